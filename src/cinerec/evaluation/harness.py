"""Offline evaluation loop: split -> fit -> recommend -> metrics, returning plain dicts.

>>> import numpy as np, scipy.sparse as sp
>>> from cinerec.models import PopularModel
>>> train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32))
>>> test = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=np.float32))
>>> rows = evaluate({"pop": PopularModel}, train, test, k=1, progress=False)
>>> rows[0]["model"], rows[0]["precision@1"]
('pop', 1.0)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from cinerec.evaluation.data import LoadedDataset, load_movielens
from cinerec.evaluation.metrics import (
    catalog_coverage,
    intra_list_diversity,
    novelty,
    ranking_report,
)
from cinerec.evaluation.splitters import (
    InteractionLog,
    Split,
    stratified_split,
    strong_generalization_split,
    time_split,
)
from cinerec.models import MODEL_CLASSES, Model, make_model
from cinerec.models.features import genre_vocabulary, item_features, user_genre_features

__all__ = [
    "DEFAULT_PARAMS",
    "SPLITTERS",
    "evaluate",
    "evaluate_cli",
    "evaluate_split",
    "format_table",
    "parse_model_spec",
    "plot_results",
    "run_dataset",
    "write_json",
]

ModelSource = Model | Callable[[], Model]

#: Hyper-parameters used when a model is named without any (the benchmark settings).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "popular": {},
    "item_knn": {"neighbours": 100, "similarity": "bm25"},
    "als": {"factors": 32, "regularization": 0.1, "alpha": 1.0, "iterations": 15},
    "ease": {"lambda_": 500.0},
    "ease_plus": {},
    "lightfm": {"no_components": 64, "epochs": 20, "learning_rate": 0.05},
}

#: Splitter names accepted by :func:`run_dataset` / :func:`evaluate_cli`.
SPLITTERS: dict[str, Callable[[InteractionLog], Split]] = {
    "stratified": lambda log: stratified_split(log, 0.75, 42, "user"),
    "stratified-item": lambda log: stratified_split(log, 0.75, 42, "item"),
    "time": lambda log: time_split(log, 0.75),
    "strong": lambda log: strong_generalization_split(log, 0.1, 0.8, 42),
}


def _instantiate(source: ModelSource) -> Model:
    if isinstance(source, Model):
        return source
    model = source()
    if not isinstance(model, Model):
        raise TypeError(f"model factory returned {type(model).__name__}, not a Model")
    return model


def evaluate(
    models: Mapping[str, ModelSource],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    k: int = 10,
    *,
    test_users: np.ndarray | None = None,
    test_input: sp.csr_matrix | None = None,
    warm_users: bool = True,
    item_features: sp.csr_matrix | None = None,
    user_features: sp.csr_matrix | None = None,
    item_genres: Sequence[frozenset[str]] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Fit each model on ``train`` and score its top-``k`` lists against ``test``.

    Args:
        models: name -> fitted-or-not model instance, or a zero-argument factory (a class
            works). Instances are refitted.
        train: ``(n_users, n_items)`` training interactions.
        test: ground truth. Either ``(n_users, n_items)`` aligned with ``train`` (then
            ``test_users`` defaults to rows with a test item) or ``(len(test_users), n_items)``.
        test_users: dense ids of the evaluated users.
        test_input: ``(len(test_users), n_items)`` fold-in rows; default ``train[test_users]``.
        warm_users: the evaluated users are rows of ``train`` (models may use learned user
            state); False for held-out users.
        item_features, user_features: passed to ``fit`` (and user rows to ``recommend``) for
            models that use them; ``user_features`` has one row per ``train`` row.
        item_genres: per item, its genres, for intra-list diversity.
        progress: show a tqdm bar over models.

    Returns:
        One dict per model: ``model``, ``kind``, ``params``, ``fit_seconds``,
        ``recommend_seconds``, ``users``, the accuracy metrics, ``coverage@k``,
        ``novelty@k`` and (with ``item_genres``) ``diversity@k``.
    """
    from tqdm.auto import tqdm

    train = sp.csr_matrix(train, dtype=np.float32)
    test = sp.csr_matrix(test)
    if test_users is None:
        if test.shape[0] != train.shape[0]:
            raise ValueError("test must be aligned with train when test_users is not given")
        test_users = np.flatnonzero(np.diff(test.indptr) > 0)
        truth = test[test_users]
    else:
        test_users = np.asarray(test_users, dtype=np.int64)
        truth = test if test.shape[0] == len(test_users) else test[test_users]
    rows_in = train[test_users] if test_input is None else sp.csr_matrix(test_input)
    popularity = np.bincount(train.indices[train.data > 0], minlength=train.shape[1])
    results: list[dict[str, Any]] = []
    for name, source in tqdm(list(models.items()), desc="models", disable=not progress):
        model = _instantiate(source)
        t0 = time.perf_counter()
        model.fit(train, item_features=item_features, user_features=user_features)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids, _ = model.recommend(
            rows_in,
            k,
            user_features=None if user_features is None else user_features[test_users],
            user_ids=test_users if warm_users else None,
        )
        rec_s = time.perf_counter() - t0
        row: dict[str, Any] = {
            "model": name,
            "kind": model.kind,
            "params": model.params,
            "fit_seconds": round(fit_s, 3),
            "recommend_seconds": round(rec_s, 3),
            "users": len(test_users),
        }
        row.update(ranking_report(ids, truth, k))
        row[f"coverage@{k}"] = catalog_coverage(ids, train.shape[1], k)
        row[f"novelty@{k}"] = novelty(ids, popularity, train.shape[0], k)
        if item_genres is not None:
            row[f"diversity@{k}"] = intra_list_diversity(ids, item_genres, k)
        results.append(row)
    return results


def evaluate_split(
    models: Mapping[str, ModelSource], split: Split, k: int = 10, **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`evaluate` on a :class:`~cinerec.evaluation.splitters.Split`."""
    return evaluate(
        models,
        split.train,
        split.test,
        k,
        test_users=split.test_users,
        test_input=split.test_input,
        warm_users=split.warm_users,
        **kwargs,
    )


def parse_model_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"ease:lambda_=300,dropout=0.2"`` -> ``("ease:lambda_=300,dropout=0.2", "ease",
    {"lambda_": 300, "dropout": 0.2})``; a bare name takes :data:`DEFAULT_PARAMS`.

    Values are parsed as JSON when possible (numbers, true/false), else kept as strings.

    >>> parse_model_spec("ease:lambda_=300,binary=true")[2]
    {'lambda_': 300, 'binary': True}
    """
    kind, _, rest = spec.partition(":")
    if kind not in MODEL_CLASSES:
        raise ValueError(f"unknown model {kind!r}; known: {sorted(MODEL_CLASSES)}")
    params: dict[str, Any] = dict(DEFAULT_PARAMS.get(kind, {}))
    for part in filter(None, rest.split(",")):
        key, _, raw = part.partition("=")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return spec if rest else kind, kind, params


def _features(data: LoadedDataset, train: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    genres = [m.genres if m else () for m in data.movies]
    years = [m.year if m else None for m in data.movies]
    items, _ = item_features(genres, years, identity=True)
    users = user_genre_features(train, genres, genre_vocabulary(genres), top_n=3)
    return items, users


def run_dataset(
    dataset: str | Path | LoadedDataset,
    models: Sequence[str] | Mapping[str, ModelSource],
    splitter: str = "stratified",
    k: int = 10,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Load a MovieLens folder, split it, evaluate ``models`` and return one row per model.

    Args:
        dataset: a MovieLens folder (any layout :func:`~cinerec.datasets.movielens.detect`
            knows) or an already loaded data set.
        models: model specs for :func:`parse_model_spec`, or name -> model/factory.
        splitter: a key of :data:`SPLITTERS`.

    Returns:
        The :func:`evaluate` rows, each with ``dataset`` and ``splitter`` added.
    """
    data = dataset if isinstance(dataset, LoadedDataset) else load_movielens(dataset)
    try:
        split = SPLITTERS[splitter](data.log)
    except KeyError:
        raise ValueError(f"unknown splitter {splitter!r}; known: {sorted(SPLITTERS)}") from None
    if isinstance(models, Mapping):
        sources: dict[str, ModelSource] = dict(models)
    else:
        sources = {}
        for spec in models:
            label, kind, params = parse_model_spec(spec)
            sources[label] = partial(make_model, kind, **params)
    item_f, user_f = _features(data, split.train)
    rows = evaluate_split(
        sources,
        split,
        k,
        item_features=item_f,
        user_features=user_f,
        item_genres=data.item_genres,
        progress=progress,
    )
    for row in rows:
        row["dataset"] = data.name
        row["splitter"] = splitter
    return rows


def format_table(
    rows: Sequence[Mapping[str, Any]], k: int = 10, columns: Sequence[str] | None = None
) -> str:
    """Markdown table of the rows (metrics with 4 decimals)."""
    cols = (
        list(columns)
        if columns
        else [
            "dataset",
            "model",
            "fit_seconds",
            f"ndcg@{k}",
            f"precision@{k}",
            f"recall@{k}",
            f"map@{k}",
            f"coverage@{k}",
            f"novelty@{k}",
            f"diversity@{k}",
        ]
    )
    cols = [c for c in cols if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(
                f"{v:.4f}"
                if isinstance(v, float) and not c.endswith("seconds")
                else f"{v:.2f}"
                if isinstance(v, float)
                else str(v)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the rows as a JSON list; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(list(rows), indent=2, default=float) + "\n", encoding="utf-8")
    return p


def plot_results(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    metrics: Sequence[str] = ("ndcg@10", "precision@10", "recall@10", "map@10"),
) -> Path:
    """Grouped bar chart (one group per metric, one bar per model/dataset) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.get('dataset', '')} {r['model']}".strip() for r in rows]
    metrics = [m for m in metrics if all(m in r for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 0.25 * len(rows)), 4.5))
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(metrics))
    for i, (label, r) in enumerate(zip(labels, rows, strict=True)):
        ax.bar(x + i * width - 0.4 + width / 2, [float(r[m]) for m in metrics], width, label=label)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("score")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=120)
    plt.close(fig)
    return p


def evaluate_cli(
    dataset_path: str | Path,
    models: Sequence[str] | None = None,
    splitter: str = "stratified",
    k: int = 10,
    out_dir: str | Path = "evaluation-results",
) -> list[dict[str, Any]]:
    """Entry point for ``cinerec evaluate``: run, print the table, write JSON/Markdown/PNG.

    Args:
        dataset_path: MovieLens folder.
        models: model specs (``"ease"``, ``"ease_plus:dropout=0.3"``, ...); default: all.
        splitter: ``stratified`` (Microsoft Recommenders protocol), ``stratified-item``,
            ``time`` or ``strong``.
        k: list length.
        out_dir: receives ``results.json``, ``results.md`` and ``results.png``.

    Returns:
        The result rows (also written to ``out_dir``).
    """
    specs = list(models) if models else list(DEFAULT_PARAMS)
    rows = run_dataset(dataset_path, specs, splitter=splitter, k=k, progress=True)
    out = Path(out_dir)
    table = format_table(rows, k)
    write_json(rows, out / "results.json")
    (out / "results.md").write_text(table + "\n", encoding="utf-8")
    plot_results(
        rows,
        out / "results.png",
        metrics=(f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}"),
    )
    print(table)
    return rows
