"""A non-editable install finds its data: the wheel holds every file of the package tree,
the demo catalogue and the migrations included (``[tool.setuptools.package-data]``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "cinerec"


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    # Build from a copy, so that the build leaves nothing in the working tree.
    project = tmp_path / "project"
    shutil.copytree(
        PACKAGE,
        project / "src" / "cinerec",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=project,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cinerec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for must in (
        "cinerec/demo_data/ml-latest-small/movies.csv",
        "cinerec/demo_data/ml-latest-small/ratings.csv",
        "cinerec/migrations/env.py",
        "cinerec/migrations/script.py.mako",
        "cinerec/migrations/versions/0001_initial.py",
        "cinerec/py.typed",
    ):
        assert must in names
    tree = {
        f"cinerec/{p.relative_to(PACKAGE).as_posix()}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert tree - names == set(), "files of src/cinerec missing from the wheel"
