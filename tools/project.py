"""The project as the maintainers' tools see it: where things are, and the registry of notebooks.

Every tool imports its paths from here, and this module imports no other tool,
so no tool imports another in a circle. (``helpers.records.project_root`` is
the learner's notion of the root: where runs are written from a notebook.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent  # the repository these maintainers' tools live in
NOTEBOOKS = ROOT / "notebooks"
RESULTS = ROOT / "results"
TIMES = RESULTS / "journey_times.json"  # each notebook's last full execution (tools.journey): the README's run times
PYPROJECT = ROOT / "pyproject.toml"
BADGE_PREFIX = "[![Open In Colab]"
REPOSITORY_LINE = re.compile(r'^Repository = "https://github\.com/([^"]+)"$', re.MULTILINE)


def repository() -> str:
    """GitHub owner/name of this project, from pyproject.toml's [project.urls] (the one place that holds it)."""
    found = REPOSITORY_LINE.search(PYPROJECT.read_text())
    if not found:
        raise ValueError(f'{PYPROJECT} needs a line Repository = "https://github.com/OWNER/NAME" under [project.urls]')
    return found.group(1)


def set_repository(name: str) -> None:
    """Point the badges and the Colab setup cell at another repository, e.g. a fork (then stamp)."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise ValueError(f"--repository takes OWNER/NAME as on GitHub, got {name!r}")
    text = PYPROJECT.read_text()
    repository()  # fails with a clear message if the line is missing
    PYPROJECT.write_text(REPOSITORY_LINE.sub(f'Repository = "https://github.com/{name}"', text))


def badge(name: str) -> str:
    return (f"{BADGE_PREFIX}(https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{repository()}/blob/main/notebooks/{name}.ipynb)")


def notebook_paths(steps: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if steps:
        paths = [p for p in paths if p.name[:2] in {s.zfill(2) for s in steps}]
    return paths


def step_title(path: Path) -> str:
    """'Fewer parameters' from the title cell '# 02 · Fewer parameters: ...'."""
    title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    return title.split("·", 1)[-1].split(":", 1)[0].strip()


def load_architecture(path: Path, name: str = "Net") -> dict:
    """Run a notebook's imports and the cell defining ``Net`` (and ``name``, if another); return the names made.

    The tests and the benchmark rebuild a step's models and config from the
    notebook itself, so there is no second copy of any architecture.
    """
    nb = nbformat.read(path, as_version=4)
    namespace: dict = {}
    exec(nb.cells[2].source, namespace)
    for cls in dict.fromkeys(["Net", name]):
        cells = [c.source for c in nb.cells if c.cell_type == "code" and f"class {cls}(" in c.source]
        if len(cells) != 1:
            raise ValueError(f"{path.name}: expected one code cell defining `class {cls}`, found {len(cells)}")
        exec(cells[0], namespace)
    return namespace


def load_seeds(name: str) -> dict | None:
    record = RESULTS / f"{name}_seeds.json"
    return json.loads(record.read_text()) if record.exists() else None


