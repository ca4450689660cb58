"""The main job: re-execute the notebooks in order and keep what must match in sync.

    python -m tools.journey                     # every notebook, in order
    python -m tools.journey --steps 01 05       # a subset
    python -m tools.journey --smoke             # a quick pass (small data, 1 epoch); changes no file
    python -m tools.journey --stamp-only        # only rewrite the cells every notebook shares
    python -m tools.journey --repository you/your-fork   # badges and the Colab cell for a fork, then stamp

Each notebook runs (with nbclient) into a temporary file and replaces the
committed one only when every cell succeeded: a failure or Ctrl-C leaves the
committed notebook byte for byte as it was. The stored outputs are what a
reader sees on GitHub, so the kernel runs without progress bars and the
outputs are cleaned (``clean_outputs``). After a run, its Result cell is
written from ``results/NN_topic.json``, so the prose states what the code
printed. ``stamp`` writes the cells every notebook shares (title navigation,
Colab badge, setup, imports) from this file, the one place that holds them.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from helpers.records import TARGET, History, SeedStats, write_json
from helpers.train import SEEDS_ENV

from .project import (BADGE_PREFIX, NOTEBOOKS, RESULTS, ROOT, TIMES, badge, load_seeds, notebook_paths, repository,
                      set_repository, step_title)


def setup_source() -> str:
    return f'''# Setup. In Colab: fetch this project and install its helpers (Colab's own torch is kept).
# Locally (`make setup`): nothing to do.
import sys

if "google.colab" in sys.modules:
    import os, subprocess, torch
    if not os.path.isdir("mnist-under-8k"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/{repository()}", "mnist-under-8k"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "mnist-under-8k"], check=True)
    sys.path.insert(0, os.path.abspath("mnist-under-8k"))
    os.environ["MNIST8K_ROOT"] = os.path.abspath("mnist-under-8k")  # results/, models/ and data/ go there
    if not torch.cuda.is_available():
        print("No GPU selected: Runtime > Change runtime type > GPU trains much faster.")'''


# What a notebook may import, in the order the import cell lists it: (name, the line that provides it).
OTHER_IMPORTS = [("Image", "from IPython.display import Image"), ("torch", "import torch"),
                 ("nn", "from torch import nn"), ("F", "import torch.nn.functional as F")]
HELPERS_NAMES = ["Config", "FastLoader", "History", "SeedStats", "choose_device", "count_parameters", "designs", "fit", "fit_seeds",
                 "handwriting", "load_mnist",
                 "load_weights", "plots", "predict_test_set", "project_root", "receptive_field_table", "recorded_seeds", "save_history",
                 "save_run", "save_seeds", "set_seed", "show_summary"]
NAV_PREFIX = "**Step "


def used_names(source: str) -> set[str]:
    """The names code uses on their own: ``fit`` in ``fit(model)``, not ``nn`` in ``torch.nn``, nothing in comments."""
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def imports_source(nb: nbformat.NotebookNode) -> str:
    """The import cell: what this notebook's other code cells use, and nothing else."""
    used = used_names("\n".join(c.source for c in nb.cells[3:] if c.cell_type == "code"))
    lines = [line for name, line in OTHER_IMPORTS if name in used]
    names = [name for name in HELPERS_NAMES if name in used]
    if names:
        joined, wrapped = "from helpers import " + ", ".join(names), ""
        if len(joined) > 110:
            wrapped, line = [], "from helpers import ("
            for name in names:
                piece = name + ", "
                if len(line) + len(piece) > 112:
                    wrapped.append(line.rstrip())
                    line = " " * len("from helpers import (")
                line += piece
            joined = "\n".join(wrapped + [line.rstrip(", ") + ")"])
        lines += ["", joined] if lines else [joined]
    return "\n".join(lines)


def navigation(name: str) -> str:
    """'**Step 3 of 13** · ← [02 · Fewer parameters](…) · [04 · Dropout](…) →' for the title cell."""
    names = [p.stem for p in notebook_paths()]
    if name not in names:  # a notebook outside the series (a test's): no navigation
        return ""
    i = names.index(name)
    parts = [f"{NAV_PREFIX}{i + 1} of {len(names)}** of *MNIST under 8k*"]
    if i > 0:
        parts.append(f"← [{names[i - 1][:2]} · {step_title(NOTEBOOKS / (names[i - 1] + '.ipynb'))}]"
                     f"({names[i - 1]}.ipynb)")
    if i + 1 < len(names):
        parts.append(f"[{names[i + 1][:2]} · {step_title(NOTEBOOKS / (names[i + 1] + '.ipynb'))}]"
                     f"({names[i + 1]}.ipynb) →")
    return " · ".join(parts)


def stamp(nb: nbformat.NotebookNode, name: str) -> bool:
    """Write the shared cells: title line, navigation and badge in cell 0, setup in cell 1, imports in cell 2.

    Returns True if anything changed.
    """
    cells = nb.cells
    before = [c.source for c in cells[:3]]
    title, *body = cells[0].source.splitlines()
    body = [line for line in body if not line.startswith((BADGE_PREFIX, NAV_PREFIX))]
    cells[0].source = "\n".join([title, *filter(None, [navigation(name)]), badge(name), *body])
    cells[1].source, cells[2].source = setup_source(), imports_source(nb)
    return before != [c.source for c in cells[:3]]


def seeds_rows(seeds: dict) -> list[str]:
    """The Result cell's rows for a multi-seed record (``helpers.records.save_seeds``)."""
    worst, best = SeedStats.of_table(seeds), seeds["stats"]["best"]
    return [f"| over {worst.n} seeds ({', '.join(map(str, worst.seeds))}): worst of the last 3 epochs | {worst.mean:.2f} % "
            f"± {worst.std:.2f} (lowest {worst.lowest:.2f} %) |",
            f"| over {worst.n} seeds: best epoch | {best['mean']:.2f} % ± {best['std']:.2f} |",
            f"| seeds at ≥ {TARGET} % on each of the last 3 epochs | {worst.at_target} of {worst.n} |"]


def result_markdown(history: History, name: str, seeds: dict | None = None) -> str:
    """The Result cell, written from the recorded history and, if any, the seed runs (never typed by hand)."""
    s = history.summary()
    at_target = len(s["epochs_at_target"])
    rows = [
        f"| parameters | {s['params']:,} |",
        f"| best test accuracy | {s['best_test_acc']:.2f} % (epoch {s['best_epoch']}) |",
        f"| last-epoch test accuracy | {s['last_test_acc']:.2f} % |",
        f"| worst of the last 3 epochs | {history.worst_of_last3:.2f} % |",
        f"| last-epoch train accuracy (running, measured while it trained) | {s['last_train_acc']:.2f} % |",
    ]
    if "last_clean_train_acc" in s:
        rows.append(f"| last-epoch train accuracy (10,000 training images, eval mode) | "
                    f"{s['last_clean_train_acc']:.2f} % |")
    rows += [f"| epochs at ≥ {TARGET} % | {at_target} of {s['epochs']} |",
             f"| time | {history.median_seconds_per_epoch:.1f} s per epoch (median of {s['epochs']}) on {s['device']} |"]
    source = f"`results/{name}.json`, the recorded run"
    if seeds is not None:
        rows += seeds_rows(seeds)
        source += f", and `results/{name}_seeds.json`, the seed runs"
    return "\n".join(["## Result", f"*Written by `tools.journey` from {source}.*", "", "| | |", "|---|---|", *rows])


def result_cell_index(nb: nbformat.NotebookNode) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Result"):
            return i
    raise ValueError("the notebook has no markdown cell starting with '## Result'")


def fill_result(nb: nbformat.NotebookNode, name: str) -> None:
    nb.cells[result_cell_index(nb)].source = result_markdown(History.load(RESULTS / f"{name}.json"), name,
                                                             load_seeds(name))


def _merge_streams(outputs: list) -> list:
    """Adjacent outputs of the same stream become one."""
    merged: list = []
    for out in outputs:
        if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == out.name):
            merged[-1].text += out.text
        else:
            merged.append(out)
    return merged


def clean_outputs(nb: nbformat.NotebookNode) -> None:
    """What a reader should see: each carriage-return overwrite resolved to the text it left on screen (a
    progress bar that slipped through leaves its last state, or nothing), and adjacent stream outputs merged.
    The kernel's timestamps (cell metadata "execution") go: they change on every run and teach nothing."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        outputs = _merge_streams(cell.outputs)
        for out in outputs:
            if out.output_type == "stream" and "\r" in out.text:
                out.text = "\n".join(line.rsplit("\r", 1)[-1] for line in out.text.split("\n"))
        outputs = [o for o in outputs if not (o.output_type == "stream" and not o.text.strip())]
        cell.outputs = _merge_streams(outputs)


def _echoing_client(nb, **kwargs):
    """An nbclient ``NotebookClient`` that also prints what the kernel writes to stdout (the epoch log)."""
    from nbclient import NotebookClient

    class EchoingClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream" and msg["content"].get("name") == "stdout":
                for line in msg["content"]["text"].splitlines():
                    print(f"      {line}", flush=True)
            return super().output(outs, msg, display_id, cell_index)

    return EchoingClient(nb, **kwargs)


# The kernel's environment while the runner executes a notebook: no progress bars (tqdm reads TQDM_DISABLE),
# and the project root named, so that records land here wherever the kernel starts.
def kernel_environment(smoke: bool) -> dict[str, str]:
    return {"MNIST8K_SMOKE": "1" if smoke else "0", "TQDM_DISABLE": "1", "MNIST8K_ROOT": str(ROOT)}


def execute(path: Path, smoke: bool = False, timeout: int | None = None, into: Path | None = None) -> float:
    """Run one notebook; on success (and not in smoke mode) replace it, or write it to ``into``. Returns seconds.

    ``into`` is for checking the runner itself: the executed, cleaned notebook
    goes there and the committed one is never touched.
    """
    from nbclient.exceptions import CellExecutionError

    name = path.stem
    nb = nbformat.read(path, as_version=4)
    stamp(nb, name)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    started = time.perf_counter()

    def on_cell_start(cell, cell_index):
        if cell_index in code_cells:
            position = code_cells.index(cell_index) + 1
            print(f"  [{name}] cell {position}/{len(code_cells)} ({time.perf_counter() - started:4.0f} s)", flush=True)

    client = _echoing_client(nb, timeout=timeout, kernel_name="python3", on_cell_start=on_cell_start,
                             resources={"metadata": {"path": str(path.parent)}})
    saved = {key: os.environ.get(key) for key in kernel_environment(smoke)}
    os.environ.update(kernel_environment(smoke))  # the kernel inherits this process's environment
    try:
        client.execute()
    except CellExecutionError as exc:
        failed = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                               for o in c.get("outputs", []))), None)
        where = f"cell {code_cells.index(failed) + 1} of {len(code_cells)} code cells" if failed in code_cells else "a cell"
        raise RuntimeError(f"{path.name}: {where} failed; the committed notebook is unchanged.\n{exc}") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    seconds = time.perf_counter() - started
    clean_outputs(nb)
    if into is not None:
        nbformat.write(nb, into)
        return seconds
    if smoke:
        return seconds
    fill_result(nb, name)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".ipynb.tmp", delete=False) as tmp:
        nbformat.write(nb, tmp)
    os.replace(tmp.name, path)  # atomic: the old notebook or the new one, never half of each
    return seconds


def record_time(name: str, seconds: float) -> None:
    """Store how long the runner took to execute notebook ``name`` (all its cells), on the device its run
    trained on, and whether its extra seeds were trained or read from the records."""
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    times[name] = {"seconds": round(seconds, 1), "device": History.load(RESULTS / f"{name}.json").device,
                   "extra_seeds": "trained" if os.environ.get(SEEDS_ENV) == "train" else "recorded"}
    write_json(TIMES, dict(sorted(times.items())))


CHECKED = "# NBVAL_CHECK_OUTPUT"  # nbval compares these cells' outputs with the stored ones


def refresh_checked_outputs(path: Path) -> bool:
    """Store fresh outputs for the cells nbval checks (model summaries: no training in them), nothing else.

    For a change to how a summary prints: the notebook runs in smoke mode into
    a temporary file, and only its checked cells' outputs are copied over.
    Returns True if the stored notebook changed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        execute(path, smoke=True, into=Path(tmp) / path.name)
        fresh = nbformat.read(Path(tmp) / path.name, as_version=4)
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell, new in zip(nb.cells, fresh.cells):
        if cell.cell_type == "code" and cell.source.startswith(CHECKED):
            if cell.source != new.source:
                raise RuntimeError(f"{path.name}: run --stamp-only first (the executed cell differs)")
            changed |= cell.outputs != new.outputs
            cell.outputs = new.outputs
    if changed:
        nbformat.write(nb, path)
    return changed


def stamp_all(paths: list[Path]) -> None:
    """Rewrite every generated cell of stored notebooks: the shared cells, and each Result from its record."""
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = nb.cells[result_cell_index(nb)].source
        if (RESULTS / f"{path.stem}.json").exists():
            fill_result(nb, path.stem)
        if stamp(nb, path.stem) or nb.cells[result_cell_index(nb)].source != before:
            nbformat.write(nb, path)
            print(f"stamped {path.name}")


def main(argv: list[str] | None = None) -> int:
    from . import readme

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", nargs="*", help="two-digit step numbers to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="small data, 1 epoch; replaces no notebook")
    parser.add_argument("--stamp-only", action="store_true",
                        help="only rewrite the generated cells (shared cells, Result from the record)")
    parser.add_argument("--readme-only", action="store_true", help="only regenerate the README sections and images")
    parser.add_argument("--refresh-checked", action="store_true",
                        help="re-run in smoke mode and store fresh outputs for the nbval-checked cells only")
    parser.add_argument("--repository", help="OWNER/NAME on GitHub: re-point badges and the Colab cell (a fork)")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.steps)
    if not paths:
        print(f"no notebooks match {args.steps} in {NOTEBOOKS}", file=sys.stderr)
        return 2
    if args.repository:
        try:
            set_repository(args.repository)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        stamp_all(notebook_paths())
        readme.update_readme()
        print(f"badges and the Colab setup cell now point at github.com/{args.repository}")
        return 0
    if args.readme_only:
        readme.update_readme()
        return 0
    if args.stamp_only:
        stamp_all(paths)
        return 0
    if args.refresh_checked:
        for path in paths:
            print(f"{path.name}: {'refreshed' if refresh_checked_outputs(path) else 'unchanged'}", flush=True)
        return 0
    total = 0.0
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name}{' (smoke)' if args.smoke else ''}", flush=True)
        try:
            seconds = execute(path, smoke=args.smoke)
        except KeyboardInterrupt:
            print(f"\ninterrupted during {path.name}; it is unchanged.", file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        total += seconds
        print(f"[{number}/{len(paths)}] {path.name} done in {seconds:.0f} s", flush=True)
        if not args.smoke:
            record_time(path.stem, seconds)
    print(f"{len(paths)} notebook(s) in {total:.0f} s")
    if not args.smoke:
        readme.update_readme()
        print("README sections and images/journey.png updated from results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
