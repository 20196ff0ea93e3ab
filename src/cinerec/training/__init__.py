"""Training, evaluation on a held-out slice, promotion and hot swap of personal models, and
the ranker that orders the default list: one job per module.

=================  =====================================================================
``data``           the training snapshot from the engine's serving state, time decay
``holdout``        the held-out slice: split, alignment to a model's columns, metrics
``fitting``        side features for hybrid models, the ids saved beside a model
``ranker``         the ranker's evidence (offline groups) and its promotion
``trainer``        :class:`Trainer`: one run (fit, check, promote, refit, swap), the
                   registry, loading at start-up, what the schedule asks for
``schedule``       :class:`Scheduler`: the embedded background schedule
``jobs``           :class:`TrainingJobs`: runs asked for over HTTP (202, coalesced)
=================  =====================================================================

The serving side of a trained model, :class:`cinerec.engine.recommenders.ModelRecommender`,
lives with the other sources. The names below are the package's public surface.
"""

from cinerec.engine.recommenders import ModelRecommender
from cinerec.training.data import TrainingData, build_training_data, decay_factors
from cinerec.training.fitting import (
    DENSE_ITEM_MODELS,
    ids_path,
    load_ids,
    model_features,
    save_ids,
)
from cinerec.training.holdout import (
    Holdout,
    align_to,
    holdout_metrics,
    holdout_split,
    keep_top_items,
)
from cinerec.training.schedule import Scheduler, _lowest_cpu_priority
from cinerec.training.trainer import HOLDOUT_USERS, Trainer, TrainReport

__all__ = [
    "DENSE_ITEM_MODELS",
    "HOLDOUT_USERS",
    "Holdout",
    "ModelRecommender",
    "Scheduler",
    "TrainReport",
    "Trainer",
    "TrainingData",
    "_lowest_cpu_priority",
    "align_to",
    "build_training_data",
    "decay_factors",
    "holdout_metrics",
    "holdout_split",
    "ids_path",
    "keep_top_items",
    "load_ids",
    "model_features",
    "save_ids",
]
