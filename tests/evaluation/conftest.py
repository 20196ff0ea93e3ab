from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("CINEREC_TEST_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "data" / "movielens" / "ml-latest-small"),
    "/work/shared/datasets/ml-latest-small",
]


@pytest.fixture(scope="session")
def ml_latest_small() -> Path:
    """ML-latest-small: $CINEREC_TEST_DATA, the shipped copy, or the shared one."""
    for c in _CANDIDATES:
        if c and (Path(c) / "ratings.csv").exists():
            return Path(c)
    pytest.skip("ml-latest-small not found (set CINEREC_TEST_DATA)")
