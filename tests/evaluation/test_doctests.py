"""The docstring examples of the ML modules are tests too."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "cinerec.evaluation.metrics",
    "cinerec.evaluation.harness",
    "cinerec.evaluation.data",
    "cinerec.models",
    "cinerec.models.features",
    "cinerec.observability.online",
    "cinerec.observability.experiments",
    "cinerec.experiments",
    "cinerec.experiments_cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
