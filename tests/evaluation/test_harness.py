from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cinerec.evaluation.harness import evaluate, evaluate_cli, format_table, parse_model_spec
from cinerec.models import EASEModel, PopularModel


def test_evaluate_on_toy_matrix() -> None:
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    rows = evaluate(
        {"pop": PopularModel, "ease": lambda: EASEModel(lambda_=1.0)},
        train,
        test,
        k=2,
        progress=False,
    )
    assert [r["model"] for r in rows] == ["pop", "ease"]
    assert rows[0]["users"] == 2
    assert 0.0 <= rows[1]["ndcg@2"] <= 1.0
    assert "| model |" in format_table(rows, k=2)


def test_parse_model_spec() -> None:
    assert parse_model_spec("ease:lambda_=300")[1:] == ("ease", {"lambda_": 300})
    with pytest.raises(ValueError):
        parse_model_spec("nope")


def test_evaluate_cli_on_ml_latest_small(ml_latest_small: Path, tmp_path: Path) -> None:
    # 9.7k items: EASE would spend a minute inverting its Gram matrix, kNN is instant.
    rows = evaluate_cli(
        ml_latest_small, ["popular", "item_knn:neighbours=50"], k=10, out_dir=tmp_path
    )
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {"popular", "item_knn:neighbours=50"}
    assert all(0.05 < r["ndcg@10"] < 1.0 for r in rows)
    assert json.loads((tmp_path / "results.json").read_text())[0]["dataset"]
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert "ndcg@10" in (tmp_path / "results.md").read_text()
