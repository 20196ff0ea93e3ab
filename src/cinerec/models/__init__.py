"""Recommender models over dense integer ids and SciPy sparse matrices.

No HTTP, no database: the service layer maps external ids to dense ids and calls
:meth:`Model.score_user` / :meth:`Model.recommend`.

>>> model = make_model("ease", lambda_=300.0)
>>> model.kind, model.params["lambda_"]
('ease', 300.0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cinerec.models.als import ALSModel
from cinerec.models.base import Model, NotFittedError, read_metadata
from cinerec.models.ease import EASEModel, EASEPlusModel
from cinerec.models.knn import ItemKNNModel
from cinerec.models.lightfm_model import LightFMModel
from cinerec.models.popular import PopularModel

__all__ = [
    "MODEL_CLASSES",
    "ALSModel",
    "EASEModel",
    "EASEPlusModel",
    "ItemKNNModel",
    "LightFMModel",
    "Model",
    "NotFittedError",
    "PopularModel",
    "load_model",
    "make_model",
    "read_metadata",
]

#: ``kind`` -> class; the ``kind`` is what model files record.
MODEL_CLASSES: dict[str, type[Model]] = {
    cls.kind: cls
    for cls in (PopularModel, ItemKNNModel, ALSModel, EASEModel, EASEPlusModel, LightFMModel)
}


def make_model(name: str, **params: Any) -> Model:
    """Instantiate a model by its ``kind`` (``"ease"``, ``"als"``, ...) with hyper-parameters."""
    try:
        cls = MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_CLASSES)}") from None
    return cls(**params)


def load_model(path: str | Path) -> Model:
    """Load any saved model, choosing the class from the file's JSON ``kind``."""
    kind = read_metadata(path)["kind"]
    try:
        cls = MODEL_CLASSES[kind]
    except KeyError:
        raise ValueError(f"{path}: unknown model kind {kind!r}") from None
    return cls.load(path)
