"""Benchmark: the usual torchvision pipeline against ``helpers``, same model, same settings.

    python -m helpers.bench                 # the final notebook's model and config
    python -m helpers.bench --notebook 05   # another step's
    python -m helpers.bench --repeats 5

Each measurement trains one epoch and tests once, from the same freshly
initialised model, in a subprocess of its own (so its peak memory is its
own). The pipelines alternate (A B, B A, A B, ...) so that a noisy machine
slows both alike, and their medians are compared. The table is printed and
written to ``results/bench_<device>.json``.

- reference: ``torchvision.datasets.MNIST`` with ``RandomRotation`` +
  ``ToTensor`` + ``Normalize`` in a ``DataLoader`` (the fastest
  ``num_workers`` found by a short probe);
- helpers: ``FastLoader`` and the training loop ``fit`` uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import data, train
from .journey import RESULTS, load_architecture, notebook_paths


def _limit(loader, batches: int | None):
    return loader if batches is None else itertools.islice(loader, batches)


def one_run(pipeline: str, notebook: Path, workers: int = 0, batches: int | None = None) -> dict:
    """Train one epoch (or the first ``batches`` batches), then test once; time both."""
    device = train.choose_device(verbose=False)
    namespace = load_architecture(notebook)
    config = namespace["config"]
    train.set_seed(config.seed)
    model = namespace["Net"]().to(device)
    optimizer = train.make_optimizer(model, config)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # torch, CUDA libraries, the model
    if pipeline == "reference":
        train_loader = data.reference_loader(True, config.batch_size, shuffle=True, degrees=config.degrees,
                                             num_workers=workers)
        test_loader = data.reference_loader(False, 1_000, num_workers=workers)
    else:
        train_loader, test_loader = train.make_loaders(config, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_loss, _ = train.train_one_epoch(model, _limit(train_loader, batches), optimizer, progress=False)
    train_seconds = time.perf_counter() - start  # .item() at the end of the epoch waited for the GPU
    start = time.perf_counter()
    _, correct, seen = train.evaluate(model, test_loader)
    test_seconds = time.perf_counter() - start
    trained = min(len(train_loader) if batches is None else batches, len(train_loader)) * config.batch_size
    # Peak memory the pipeline and training added: GPU memory on a GPU, else the process's peak RSS
    # above what importing torch and building the model took (DataLoader workers not included).
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline)
    return {"pipeline": pipeline, "workers": workers, "train_seconds": train_seconds,
            "train_images": min(trained, 60_000 if not data.smoke_mode() else data.SMOKE_TRAIN),
            "test_seconds": test_seconds, "test_images": seen, "test_accuracy": 100 * correct / seen,
            "train_loss": train_loss, "peak_bytes": peak}


def _subprocess(pipeline: str, notebook: Path, workers: int = 0, batches: int | None = None) -> dict:
    command = [sys.executable, "-m", "helpers.bench", "--one", pipeline, "--notebook", notebook.name[:2],
               "--workers", str(workers)] + (["--batches", str(batches)] if batches else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_workers(notebook: Path, batches: int = 60) -> tuple[int, dict]:
    """Try num_workers 0, 1, ..., cores on a few batches; keep the fastest."""
    candidates = sorted({0, 1, 2, os.cpu_count() or 1})
    seconds = {w: _subprocess("reference", notebook, w, batches)["train_seconds"] for w in candidates}
    return min(seconds, key=seconds.get), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default=None, help="two-digit step whose model/config to use (default: the last)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline (median is reported)")
    parser.add_argument("--one", choices=["reference", "helpers"], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paths = notebook_paths([args.notebook] if args.notebook else None)
    if not paths:
        print(f"no notebook {args.notebook!r}", file=sys.stderr)
        return 2
    notebook = paths[-1]
    if args.one:  # inside a measurement subprocess
        print(json.dumps(one_run(args.one, notebook, args.workers, args.batches)))
        return 0

    device = train.choose_device()
    config = load_architecture(notebook)["config"]
    print(f"Benchmark on {notebook.name}: {config}")
    workers, probe = best_workers(notebook)
    print(f"reference DataLoader: num_workers={workers} (probe, s for 60 batches: "
          f"{ {w: round(s, 2) for w, s in probe.items()} })")
    runs: dict[str, list[dict]] = {"reference": [], "helpers": []}
    for repeat in range(args.repeats):
        order = ["reference", "helpers"] if repeat % 2 == 0 else ["helpers", "reference"]
        for pipeline in order:
            run = _subprocess(pipeline, notebook, workers if pipeline == "reference" else 0)
            runs[pipeline].append(run)
            print(f"  {repeat + 1}/{args.repeats} {pipeline:9s} train {run['train_seconds']:6.2f} s  "
                  f"test {run['test_seconds']:5.2f} s  acc {run['test_accuracy']:.2f}%", flush=True)

    def median(pipeline: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[pipeline])

    table = {}
    for pipeline in runs:
        table[pipeline] = {
            "train_seconds": median(pipeline, "train_seconds"),
            "train_images_per_s": runs[pipeline][0]["train_images"] / median(pipeline, "train_seconds"),
            "test_seconds": median(pipeline, "test_seconds"),
            "test_images_per_s": runs[pipeline][0]["test_images"] / median(pipeline, "test_seconds"),
            "peak_mib": max(r["peak_bytes"] for r in runs[pipeline]) / 2**20,
        }
    speedup = {"train": table["reference"]["train_seconds"] / table["helpers"]["train_seconds"],
               "test": table["reference"]["test_seconds"] / table["helpers"]["test_seconds"]}
    record = {
        "notebook": notebook.name, "config": config.__dict__,
        "device": train.describe_device(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "repeats": args.repeats, "reference_workers": workers, "smoke": data.smoke_mode(),
        "median": table, "speedup": speedup, "runs": runs,
    }
    print(f"\n{'pipeline':10s}{'s/epoch':>9s}{'img/s':>9s}{'test s':>8s}{'test img/s':>11s}{'peak MiB':>10s}")
    for pipeline, row in table.items():
        print(f"{pipeline:10s}{row['train_seconds']:9.2f}{row['train_images_per_s']:9.0f}{row['test_seconds']:8.2f}"
              f"{row['test_images_per_s']:11.0f}{row['peak_mib']:10.0f}")
    print(f"speed-up: training {speedup['train']:.2f}x, test {speedup['test']:.2f}x "
          f"({record['device']}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if not data.smoke_mode():
        out = RESULTS / f"bench_{device.type}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
