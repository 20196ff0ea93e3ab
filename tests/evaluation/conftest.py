from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("CINEREC_TEST_DATA", ""),
    # the copy shipped with the package (always there in a checkout)
    str(Path(__file__).resolve().parents[2] / "src" / "cinerec" / "demo_data" / "ml-latest-small"),
]


@pytest.fixture(scope="session")
def ml_latest_small() -> Path:
    """ML-latest-small: $CINEREC_TEST_DATA or the copy shipped in the package."""
    for c in _CANDIDATES:
        if c and (Path(c) / "ratings.csv").exists():
            return Path(c)
    pytest.fail("ml-latest-small not found: it ships in src/cinerec/demo_data")
