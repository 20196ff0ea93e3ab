"""Offline evaluation: splitters, metrics and the split -> fit -> metrics harness."""

from cinerec.evaluation.harness import evaluate, evaluate_cli, evaluate_split, run_dataset
from cinerec.evaluation.metrics import (
    catalog_coverage,
    intra_list_diversity,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
)
from cinerec.evaluation.splitters import (
    InteractionLog,
    Split,
    stratified_split,
    strong_generalization_split,
    time_split,
)

__all__ = [
    "InteractionLog",
    "Split",
    "catalog_coverage",
    "evaluate",
    "evaluate_cli",
    "evaluate_split",
    "intra_list_diversity",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "recall_at_k",
    "run_dataset",
    "stratified_split",
    "strong_generalization_split",
    "time_split",
]
