"""Where runs are written (the project root) and how a record is written (atomically)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

ROOT_ENV = "MNIST8K_ROOT"
PROJECT_NAME = "mnist-under-8k"  # the marker: a pyproject.toml naming this project


def project_root() -> Path:
    """The folder that holds ``results/``, ``models/`` and ``data/``.

    In order: ``$MNIST8K_ROOT`` if set; else the nearest folder, from the
    working directory upwards, whose ``pyproject.toml`` names this project
    (so a notebook opened from ``notebooks/`` finds the clone it sits in);
    else the working directory itself. Where ``helpers`` is installed plays
    no part, so ``pip install .`` works as well as a clone.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if _is_project(folder)), here)


def _is_project(folder: Path) -> bool:
    marker = folder / "pyproject.toml"
    try:
        return marker.is_file() and f'name = "{PROJECT_NAME}"' in marker.read_text()
    except OSError:
        return False


def write_json(path: str | Path, record) -> Path:
    """Write ``record`` as indented JSON, atomically: a run killed while writing leaves the old file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(json.dumps(record, indent=1) + "\n")
    os.replace(tmp.name, path)
    return path
