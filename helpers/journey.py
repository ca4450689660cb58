"""The main job: re-execute the notebooks in order and keep what must match in sync.

    python -m helpers.journey                 # every notebook, in order
    python -m helpers.journey --steps 01 05   # a subset
    python -m helpers.journey --smoke         # a quick pass (small data, 1 epoch); changes no file

Each notebook runs (with nbclient) into a temporary file and replaces the
committed one only when every cell succeeded: a failure or Ctrl-C leaves the
committed notebook byte for byte as it was. After a run, its Result cell is
written from ``results/NN_topic.json``, so the prose states what the code
printed. ``stamp`` writes the cells that every notebook shares (badge, setup,
imports) from this file, the one place that holds them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .train import REPO_ROOT, TARGET, History

REPOSITORY = "mnist-under-8k/mnist-under-8k"  # GitHub owner/name: the badges and the Colab setup read it from here
NOTEBOOKS = REPO_ROOT / "notebooks"
RESULTS = REPO_ROOT / "results"

SETUP_SOURCE = f'''# Setup. In Colab: fetch this project and install its helpers. Locally (`make setup`): nothing to do.
import sys

if "google.colab" in sys.modules:
    import os, subprocess, torch
    if not os.path.isdir("mnist-under-8k"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/{REPOSITORY}", "mnist-under-8k"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "mnist-under-8k"], check=True)
    sys.path.insert(0, os.path.abspath("mnist-under-8k"))
    if not torch.cuda.is_available():
        print("No GPU selected: Runtime > Change runtime type > GPU trains much faster.")'''

IMPORTS_SOURCE = '''import torch
from torch import nn
import torch.nn.functional as F

from helpers import (Config, fit, fit_seeds, load_mnist, plots, predict_test_set, save_run, save_seeds, set_seed,
                     show_summary)'''

BADGE_PREFIX = "[![Open In Colab]"


def badge(name: str) -> str:
    return (f"{BADGE_PREFIX}(https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{name}.ipynb)")


def notebook_paths(steps: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if steps:
        paths = [p for p in paths if p.name[:2] in {s.zfill(2) for s in steps}]
    return paths


def stamp(nb: nbformat.NotebookNode, name: str) -> bool:
    """Write the shared cells: the badge line in cell 0, setup in cell 1, imports in cell 2.

    Returns True if anything changed.
    """
    cells = nb.cells
    title = cells[0].source.splitlines()
    lines = [line for line in title if not line.startswith(BADGE_PREFIX)]
    lines.insert(1, badge(name))
    before = [c.source for c in cells[:3]]
    cells[0].source = "\n".join(lines)
    cells[1].source, cells[2].source = SETUP_SOURCE, IMPORTS_SOURCE
    return before != [c.source for c in cells[:3]]


def load_architecture(path: Path, name: str = "Net") -> dict:
    """Run a notebook's imports and the cell defining ``Net`` (and ``name``, if another); return the names made.

    The tests and the benchmark rebuild a step's models and config from the
    notebook itself, so there is no second copy of any architecture.
    """
    nb = nbformat.read(path, as_version=4)
    namespace: dict = {}
    exec(IMPORTS_SOURCE, namespace)
    for cls in dict.fromkeys(["Net", name]):
        cells = [c.source for c in nb.cells if c.cell_type == "code" and f"class {cls}(" in c.source]
        if len(cells) != 1:
            raise ValueError(f"{path.name}: expected one code cell defining `class {cls}`, found {len(cells)}")
        exec(cells[0], namespace)
    return namespace


def result_markdown(history: History, name: str) -> str:
    """The Result cell, written from the recorded history (never typed by hand)."""
    s = history.summary()
    at_target = len(s["epochs_at_target"])
    return "\n".join([
        "## Result",
        f"*Written by `helpers.journey` from `results/{name}.json`, the run above.*",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {s['params']:,} |",
        f"| best test accuracy | {s['best_test_acc']:.2f} % (epoch {s['best_epoch']}) |",
        f"| last-epoch test accuracy | {s['last_test_acc']:.2f} % |",
        f"| worst of the last 3 epochs | {s['last3_min']:.2f} % |",
        f"| last-epoch train accuracy | {s['last_train_acc']:.2f} % |",
        f"| epochs at ≥ {TARGET} % | {at_target} of {s['epochs']} |",
        f"| time | {s['seconds_per_epoch']:.1f} s per epoch on {s['device']} |",
    ])


def result_cell_index(nb: nbformat.NotebookNode) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Result"):
            return i
    raise ValueError("the notebook has no markdown cell starting with '## Result'")


def fill_result(nb: nbformat.NotebookNode, name: str) -> None:
    nb.cells[result_cell_index(nb)].source = result_markdown(History.load(RESULTS / f"{name}.json"), name)


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


def execute(path: Path, smoke: bool = False, timeout: int | None = None) -> float:
    """Run one notebook; on success (and not in smoke mode) replace it. Returns seconds taken."""
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
    old_smoke = os.environ.get("MNIST8K_SMOKE")
    os.environ["MNIST8K_SMOKE"] = "1" if smoke else "0"
    try:
        client.execute()
    except CellExecutionError as exc:
        failed = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                                                               for o in c.get("outputs", []))), None)
        where = f"cell {code_cells.index(failed) + 1} of {len(code_cells)} code cells" if failed in code_cells else "a cell"
        raise RuntimeError(f"{path.name}: {where} failed; the committed notebook is unchanged.\n{exc}") from None
    finally:
        if old_smoke is None:
            os.environ.pop("MNIST8K_SMOKE", None)
        else:
            os.environ["MNIST8K_SMOKE"] = old_smoke
    seconds = time.perf_counter() - started
    if smoke:
        return seconds
    fill_result(nb, name)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".ipynb.tmp", delete=False) as tmp:
        nbformat.write(nb, tmp)
    os.replace(tmp.name, path)  # atomic: the old notebook or the new one, never half of each
    return seconds


README = REPO_ROOT / "README.md"


def step_title(path: Path) -> str:
    """'Fewer parameters' from the title cell '# 02 · Fewer parameters: ...'."""
    title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    return title.split("·", 1)[-1].split(":", 1)[0].strip()


def journey_table() -> str:
    """The README's results table, one row per notebook, from results/NN_topic.json."""
    lines = ["| step | notebook | parameters | best test % (epoch) | worst of last 3 % | epochs ≥ 99.4 % | Colab |",
             "|---|---|---:|---:|---:|---:|---|"]
    for path in notebook_paths():
        record = RESULTS / f"{path.stem}.json"
        link = f"[{step_title(path)}](notebooks/{path.name})"
        if record.exists():
            s = History.load(record).summary()
            numbers = (f"{s['params']:,} | {s['best_test_acc']:.2f} ({s['best_epoch']}) | {s['last3_min']:.2f} | "
                       f"{len(s['epochs_at_target'])} of {s['epochs']}")
        else:
            numbers = "not run yet | | |"
        lines.append(f"| {path.stem[:2]} | {link} | {numbers} | {badge(path.stem)} |")
    histories = [History.load(RESULTS / f"{p.stem}.json") for p in notebook_paths()
                 if (RESULTS / f"{p.stem}.json").exists()]
    if histories:
        devices = sorted({h.device for h in histories})
        minutes = sum(sum(h.seconds) for h in histories) / 60
        lines += ["", f"Training time of these {len(histories)} runs (one per step, seed runs and the squeeze not "
                      f"counted): {minutes:.0f} min on {', '.join(devices)}."]
    return "\n".join(lines)


def headline() -> str:
    """The README's headline claim, from the final notebook's seed table."""
    records = sorted(RESULTS.glob("[0-9][0-9]_*seeds.json"))
    if not records:
        return "*The final model has not been run yet.*"
    summary = json.loads(records[-1].read_text())
    stats, n = summary["stats"], len(summary["rows"])
    held = sum(r["last3_min"] >= TARGET for r in summary["rows"])
    return (f"**{summary['params']:,} parameters, {summary['epochs']} epochs.** Over {n} seeds, the worst of the last "
            f"3 epochs is {stats['last3_min']['mean']:.2f} % ± {stats['last3_min']['std']:.2f} on average "
            f"(lowest seed: {stats['last3_min']['min']:.2f} %); {held} of {n} seeds stay at ≥ {TARGET} % on each "
            f"of the last 3 epochs. Best epochs: {stats['best']['mean']:.2f} % ± {stats['best']['std']:.2f}. "
            f"(`{records[-1].relative_to(REPO_ROOT)}`)" + squeeze_line(records[-1].stem[:2]))


def squeeze_line(step: str) -> str:
    """One sentence on the squeezed model of the final step, if it was trained."""
    squeezed = sorted(RESULTS.glob(f"{step}_squeeze*.json"))
    if not squeezed:
        return ""
    s = History.load(squeezed[-1]).summary()
    held = "holds" if s["last3_min"] >= TARGET else "does not hold"
    return (f"\n\nSqueezed to **{s['params']:,} parameters**, the same recipe {held} the bar: best "
            f"{s['best_test_acc']:.2f} %, worst of the last 3 epochs {s['last3_min']:.2f} % (one seed).")


BENCH_ROWS = {"reference": "torchvision + DataLoader (num_workers={workers})",
              "reference_kept_memory": "the same + helpers' malloc setting",
              "helpers": "helpers (FastLoader + malloc setting)"}


def bench_table() -> str:
    """The README's performance table, from results/bench_<device>.json (``make bench``)."""
    lines = []
    for record in sorted(RESULTS.glob("bench_*.json")):
        b = json.loads(record.read_text())
        lines += [f"On **{b['device']}**, torch {b['torch']}, {b['threads']} threads, {b['notebook']}'s model and config, "
                  f"median of {b['repeats']} alternating runs (`{record.relative_to(REPO_ROOT)}`):", "",
                  "| pipeline | s / training epoch | images / s | s / test pass | peak memory added (MiB) |",
                  "|---|---:|---:|---:|---:|"]
        for pipeline, row in b["median"].items():
            name = BENCH_ROWS[pipeline].format(workers=b["reference_workers"])
            lines.append(f"| {name} | {row['train_seconds']:.2f} | {row['train_images_per_s']:,.0f} | "
                         f"{row['test_seconds']:.2f} | {row['peak_mib']:,.0f} |")
        speedup = b["speedup"]
        lines += ["", f"Speed-up: **{speedup['train']:.2f}×** per training epoch, {speedup['test']:.2f}× per test pass"
                      + (f"; the malloc setting alone: {speedup['train_malloc_only']:.2f}×." if "train_malloc_only" in
                         speedup else "."), ""]
    return "\n".join(lines).strip() or "*No benchmark recorded yet: run `make bench`.*"


def profile_summary() -> str:
    """The README's profile of one training step, from results/profile_<device>.json (``make profile``)."""
    lines = []
    for record in sorted(RESULTS.glob("profile_*.json")):
        r = json.loads(record.read_text())
        phases = r["phases_ms"]
        lines += [f"One training step of {r['notebook']}'s model through helpers, batch {r['batch_size']}, on "
                  f"**{r['device']}** (`{record.relative_to(REPO_ROOT)}`, mean of {r['steps']} steps):", "",
                  "| phase | ms / step | share |", "|---|---:|---:|"]
        lines += [f"| {name} | {ms:.2f} | {100 * ms / r['step_ms']:.0f} % |" for name, ms in phases.items()]
        lines += [f"| **whole step** | **{r['step_ms']:.2f}** | {r['step_ms'] * r['steps_per_epoch'] / 1000:.1f} s "
                  f"per epoch of {r['steps_per_epoch']} steps |", "",
                  "Inside the step, by kind of operation (`torch.profiler`, share of the operations' own time): "
                  + ", ".join(f"{kind} {share:.0f} %" for kind, share in r["op_kinds_percent"].items()) + "."]
        c = r["compiled"]
        if "error" in c:
            lines += ["", f"`torch.compile` could not run there ({c['error']})."]
        else:
            lines += ["", f"The same step under `torch.compile`, alternating with the eager one on the same batches: "
                          f"{c['compiled_step_ms']:.2f} ms against {c['eager_step_ms']:.2f} ms "
                          f"({c['eager_step_ms'] / c['compiled_step_ms']:.2f}×), after {c['compile_seconds']:.0f} s "
                          f"of compiling."]
        lines.append("")
    return "\n".join(lines).strip() or "*No profile recorded yet: run `make profile`.*"


def accuracy_table() -> str:
    """The README's same-accuracy check, from results/reference_pipeline_seeds.json (``make bench-accuracy``)."""
    record = RESULTS / "reference_pipeline_seeds.json"
    if not record.exists():
        return "*Not run yet: `make bench-accuracy`.*"
    r = json.loads(record.read_text())
    columns = [("reference", "torchvision + DataLoader")] + ([("helpers", "helpers")] if "helpers" in r else [])
    lines = ["| seed | " + " | ".join(f"{label}: best % | {label}: worst of last 3 %" for _, label in columns) + " |",
             "|---:|" + "---:|" * (2 * len(columns))]
    by_seed = [{row["seed"]: row for row in r[key]["rows"]} for key, _ in columns]
    for seed in r["reference"]["rows"]:
        cells = [f"{rows[seed['seed']]['best']:.2f} | {rows[seed['seed']]['last3_min']:.2f}" if seed["seed"] in rows
                 else " | " for rows in by_seed]
        lines.append(f"| {seed['seed']} | " + " | ".join(cells) + " |")
    stats = [r[key]["stats"] for key, _ in columns]
    lines.append("| mean ± std | " + " | ".join(f"{s['best']['mean']:.2f} ± {s['best']['std']:.2f} | "
                                              f"{s['last3_min']['mean']:.2f} ± {s['last3_min']['std']:.2f}"
                                              for s in stats) + " |")
    held = sum(row["last3_min"] >= TARGET for row in r["reference"]["rows"])
    lines += ["", f"{r['notebook']}'s model and config, {r['reference']['epochs']} epochs, same initial weights per "
                  f"seed; through the reference pipeline {held} of {len(r['reference']['rows'])} seeds stay at "
                  f"≥ {TARGET} % on each of the last 3 epochs (`{record.relative_to(REPO_ROOT)}`, on {r['device']})."]
    return "\n".join(lines)


SECTIONS = {"journey-table": journey_table, "headline": headline, "bench": bench_table,
            "accuracy": accuracy_table, "profile": profile_summary}


def readme_sections(text: str) -> dict[str, tuple[int, int]]:
    """Where each generated section sits in the README: between <!-- NAME:start --> and <!-- NAME:end -->."""
    spans = {}
    for name in SECTIONS:
        start_mark, end_mark = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start_mark in text:
            spans[name] = (text.index(start_mark) + len(start_mark), text.index(end_mark))
    return spans


def update_readme(readme: Path = README) -> bool:
    """Regenerate the README's generated sections and images/journey.png. True if the README changed."""
    text = readme.read_text()
    new = text
    for name in SECTIONS:
        span = readme_sections(new).get(name)
        if span:
            new = new[:span[0]] + "\n" + SECTIONS[name]() + "\n" + new[span[1]:]
    records = [RESULTS / f"{p.stem}.json" for p in notebook_paths() if (RESULTS / f"{p.stem}.json").exists()]
    if records:
        from .plots import journey_plot

        (REPO_ROOT / "images").mkdir(exist_ok=True)
        journey_plot(records).savefig(REPO_ROOT / "images" / "journey.png", dpi=110)
    if new != text:
        readme.write_text(new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", nargs="*", help="two-digit step numbers to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="small data, 1 epoch; replaces no notebook")
    parser.add_argument("--stamp-only", action="store_true", help="only rewrite the shared cells")
    parser.add_argument("--readme-only", action="store_true", help="only regenerate the README table and images")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.steps)
    if not paths:
        print(f"no notebooks match {args.steps} in {NOTEBOOKS}", file=sys.stderr)
        return 2
    if args.readme_only:
        update_readme()
        return 0
    if args.stamp_only:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            if stamp(nb, path.stem):
                nbformat.write(nb, path)
                print(f"stamped {path.name}")
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
    print(f"{len(paths)} notebook(s) in {total:.0f} s")
    if not args.smoke:
        update_readme()
        print("README table and images/journey.png updated from results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
