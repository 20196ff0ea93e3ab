"""Model fitting helpers: side features for hybrid models and the files saved beside a
model (its external ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from cinerec.models import Model
from cinerec.models.features import item_features, user_genre_features
from cinerec.training.data import TrainingData

#: models whose memory grows with items^2
DENSE_ITEM_MODELS = {"ease", "ease_plus"}


def model_features(data: TrainingData, model: Model, x: sp.csr_matrix) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if model.uses_item_features or model.uses_user_features:
        itf, names = item_features(data.item_genres, data.years)
        if model.uses_item_features:
            out["item_features"] = itf
            out["item_feature_names"] = names
        if model.uses_user_features:
            vocab = [n for n in names if not n.startswith("decade:")]
            out["user_features"] = user_genre_features(x, data.item_genres, vocab)
            out["vocabulary"] = vocab
    return out


def save_ids(path: Path, item_ids: list[str], user_ids: list[str]) -> None:
    path.write_text(json.dumps({"items": item_ids, "users": user_ids}))


def load_ids(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text())
    return list(data["items"]), list(data["users"])


def ids_path(model_path: str | Path) -> Path:
    return Path(str(model_path).removesuffix(".npz") + ".ids.json")
