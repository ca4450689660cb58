"""The design search behind the final model: every candidate trained on several seeds, every run recorded.

    python -m tools.search --list                      # the candidates and their parameter counts
    python -m tools.search --stage 1                   # train stage 1's candidates on seeds 1, 2, 3
    python -m tools.search --stage 1 --worker 0 --workers 2 --threads 1   # two processes side by side
    python -m tools.search --summary                   # one line per candidate, from the records
    python -m tools.search --stage 9 --held-out        # the held-out check of stage 9's candidates

A candidate is an architecture written as a short string plus the training
recipe. Architecture tokens, in forward order:

    cN   3x3 convolution to N channels, no padding (the map shrinks by 2)
    CN   3x3 convolution to N channels, padding 1 (the map keeps its size)
    sN   depthwise-separable 3x3: a 3x3 per channel, then a 1x1 to N channels
    tN   1x1 convolution to N channels (a transition: mixes channels, sees no neighbours)
    p    2x2 max-pool
    h    the head: 1x1 convolution to 10 maps, global average pooling
    fN   a flatten head instead (the ablation): 1x1 convolution to N maps, flatten, a linear layer to 10

Every convolution but the head's is followed by BatchNorm (unless the recipe
says ``batchnorm=False``: then the convolutions keep their bias), ReLU and,
when the recipe's dropout is above 0, ``Dropout2d``.

Each (candidate, seed) run is written to ``results/search/<key>__seed<N>.json``
as soon as it ends (a ``History`` plus the candidate), so an interrupted search
resumes where it stopped and nothing is trained twice. Candidates are scored on
the worst test accuracy of their last 3 epochs, over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from helpers import data, train
from helpers.files import write_json
from helpers.summary import count_parameters

SEEDS = (1, 2, 3)

# The recipe every candidate starts from: step 12's, without dropout (the squeeze was under capacity).
# ``lr`` matters only without the schedule (scheduler="none"), ``batchnorm`` only for the ablation.
BASE = {"dropout": 0.0, "epochs": 15, "batch_size": 128, "optimizer": "adam", "scheduler": "onecycle",
        "max_lr": 0.02, "pct_start": 0.3, "degrees": 7.0, "translate": 0.0, "scale": 0.0, "lr": 0.001,
        "batchnorm": True}


def candidate(arch: str, **recipe) -> dict:
    unknown = set(recipe) - set(BASE)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {sorted(unknown)}; known: {sorted(BASE)}")
    return {"arch": arch, **BASE, **recipe}


# Stages, each planned from what the records of the previous ones showed (see the search notebook).
STAGES: dict[int, list[dict]] = {
    # 1: where ~5,000 parameters go, on one recipe: two or three convolutions after the pool,
    #    a 1x1 transition or none, padding on the first convolution.
    1: [
        candidate("c8 c8 p c12 c12 c16 h"),
        candidate("C8 c8 p c12 c12 c16 h"),
        candidate("c8 c10 p t8 c12 c12 c14 h"),
        candidate("c8 c8 p c10 c10 c12 c12 h"),
        candidate("c8 c8 p c10 c12 c14 h"),            # towards the squeeze (~4,000)
        candidate("c8 c12 p t12 s24 s24 s24 h"),       # depthwise-separable after the pool
    ],
    # 2: after stage 1's first seeds (99.43-99.47 % at 3,508-4,884 parameters, clean train accuracy ~99.7 %):
    #    what costs no parameters (augmentation, peak lr, batch size) on the ~4,200 design, and
    #    where depthwise-separable convolutions lead.
    2: [
        candidate("c8 c8 p c10 c12 c14 h", degrees=10.0, translate=0.05),
        candidate("c8 c8 p c10 c12 c14 h", max_lr=0.04),
        candidate("c8 c8 p c10 c12 c14 h", batch_size=64),
        candidate("c8 c8 p c12 c12 c16 h", degrees=10.0, translate=0.05),
        candidate("c8 c12 p t16 s32 s32 s32 h"),
        candidate("c8 c12 p t12 s24 s24 s24 s24 h"),
        candidate("c8 s16 p t12 s24 s24 s24 h"),
        candidate("c8 c8 p c10 c12 c14 h", dropout=0.02),
    ],
    # 3: on a GPU (seconds a run), the grid the CPU could not afford: ten architectures from 3,000 to
    #    5,000 parameters, each with the base recipe and three recipes that cost no parameters.
    3: [candidate(arch, **recipe)
        for arch in ("c8 c8 p c12 c12 c16 h", "c8 c8 p c10 c10 c12 c12 h", "c8 c10 p t8 c12 c12 c14 h",
                     "c8 c8 p c10 c12 c14 h", "c8 c8 p c10 c10 c12 h", "c6 c8 p c10 c12 c14 h",
                     "c8 c8 p c8 c10 c12 c14 h", "c8 c12 p t12 s24 s24 s24 h", "c8 c12 p t16 s32 s32 s32 h",
                     "c8 c12 p t12 s24 s24 s24 s24 h")
        for recipe in ({}, {"batch_size": 64}, {"degrees": 10.0, "translate": 0.05}, {"max_lr": 0.04})],
}


def key(cand: dict) -> str:
    """A file-name-safe name: the architecture, then every recipe field that differs from BASE."""
    parts = [cand["arch"].replace(" ", "-")]
    value = {name: cand.get(name, BASE[name]) for name in BASE}  # fields added to BASE later: their default
    parts += [f"{name}={value[name]:g}" if isinstance(value[name], float) else f"{name}={value[name]}"
              for name in BASE if value[name] != BASE[name]]
    return "_".join(parts)


def conv_block(in_channels: int, out_channels: int, kind: str, dropout: float, batchnorm: bool = True) -> nn.Sequential:
    """One token's convolution, then BatchNorm, ReLU and (if any) dropout of whole maps."""
    bias = not batchnorm  # BatchNorm's shift replaces the bias
    if kind == "s":
        conv = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False),
                             nn.Conv2d(in_channels, out_channels, 1, bias=bias))
    else:
        size, padding = {"c": (3, 0), "C": (3, 1), "t": (1, 0), "f": (1, 0)}[kind]
        conv = nn.Conv2d(in_channels, out_channels, size, padding=padding, bias=bias)
    layers = [conv, nn.BatchNorm2d(out_channels)] if batchnorm else [conv]
    layers.append(nn.ReLU())
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


def build(arch: str, dropout: float = 0.0, batchnorm: bool = True) -> nn.Sequential:
    """The network an architecture string describes (see the module docstring)."""
    layers, channels, size = [], 1, 28
    tokens = arch.split()
    for token in tokens:
        kind, width = token[0], token[1:]
        if kind in "cCstf" and width.isdigit() and int(width) > 0:
            layers.append(conv_block(channels, int(width), kind, dropout if kind != "f" else 0.0, batchnorm))
            channels = int(width)
            size -= 2 if kind in "cs" else 0
            if kind == "f":
                layers += [nn.Flatten(), nn.Linear(channels * size * size, 10)]
        elif token == "p":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        elif token == "h":
            layers += [nn.Conv2d(channels, 10, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            raise ValueError(f"unknown token {token!r} in {arch!r}; use cN, CN, sN, tN, p, h or fN")
    if not tokens or tokens[-1][0] not in "hf" or any(t[0] in "hf" for t in tokens[:-1]):
        raise ValueError(f"{arch!r} must end with a head, 'h' or 'fN', and have no other")
    return nn.Sequential(*layers)


def build_candidate(cand: dict) -> nn.Sequential:
    return build(cand["arch"], cand["dropout"], cand.get("batchnorm", BASE["batchnorm"]))


def parameters(cand: dict) -> int:
    return count_parameters(build_candidate(cand))


def config_of(cand: dict, seed: int) -> train.Config:
    fields = {f.name for f in dataclasses.fields(train.Config)}
    return train.Config(seed=seed, **{k: v for k, v in cand.items() if k in fields})


def record_path(out: Path, cand: dict, seed: int, held_out: bool = False) -> Path:
    """Where one run is recorded; the held-out checks in a folder of their own."""
    return (out / "held_out" if held_out else out) / f"{key(cand)}__seed{seed}.json"


def run_one(cand: dict, seed: int, out: Path) -> dict:
    """Train one candidate on one seed and record it (atomically: a killed run leaves no record)."""
    train.set_seed(seed)
    model = build_candidate(cand)
    history = train.fit(model, config_of(cand, seed), progress=False)
    record = dataclasses.asdict(history) | {"summary": history.summary(), "candidate": cand, "key": key(cand)}
    write_json(record_path(out, cand, seed), record)
    return record


HELD_OUT = 10_000  # the last 10,000 training images, never trained on in the held-out check


def run_held_out(cand: dict, seed: int, out: Path) -> dict:
    """The held-out check: train on the first 50,000 training images; after every epoch measure
    the 10,000 held out and the test set. Did choosing on the test set flatter the test numbers?"""
    train.set_seed(seed)
    config = config_of(cand, seed)
    device = train.choose_device(verbose=False)
    model = build_candidate(cand).to(device)
    images, labels = data.load_mnist(train=True)
    keep = len(labels) - (HELD_OUT if not data.smoke_mode() else len(labels) // 5)
    train_loader = data.FastLoader(images[:keep], labels[:keep], config.batch_size, shuffle=True, seed=seed,
                                   degrees=config.degrees, translate=config.translate, scale=config.scale, device=device)
    held_out = data.FastLoader(images[keep:], labels[keep:], train.EVAL_BATCH, device=device)
    _, test_loader = train.make_loaders(config, device)
    torch.manual_seed(seed)
    optimizer = train.make_optimizer(model, config)
    scheduler, per_batch = train.make_scheduler(optimizer, config, len(train_loader))
    record = {"candidate": cand, "key": key(cand), "seed": seed, "train_images": keep, "held_out_images": len(labels) - keep,
              "params": count_parameters(model), "device": train.describe_device(device), "held_out_acc": [], "test_acc": []}
    for _ in range(1 if data.smoke_mode() else config.epochs):
        train.train_one_epoch(model, train_loader, optimizer, scheduler if per_batch else None, progress=False)
        if scheduler is not None and not per_batch:
            scheduler.step()
        for name, loader in (("held_out_acc", held_out), ("test_acc", test_loader)):
            _, correct, total = train.evaluate(model, loader)
            record[name].append(100.0 * correct / total)
    write_json(record_path(out, cand, seed, held_out=True), record)
    return record


def load_records(out: Path) -> dict[str, list[dict]]:
    """Every recorded run, grouped by candidate key."""
    grouped: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*__seed*.json")):
        record = json.loads(path.read_text())
        grouped.setdefault(record["key"], []).append(record)
    return grouped


def score(records: list[dict]) -> dict:
    """A candidate over its seeds: mean, std and min of the worst of the last 3 epochs."""
    worst = [min(r["test_acc"][-3:]) for r in records]
    return {"seeds": sorted(r["config"]["seed"] for r in records), "params": records[0]["params"],
            "last3_min_mean": statistics.fmean(worst), "last3_min_std": statistics.stdev(worst) if len(worst) > 1 else 0.0,
            "last3_min_min": min(worst), "best_mean": statistics.fmean(max(r["test_acc"]) for r in records),
            "clean_train_mean": statistics.fmean(r["clean_train_acc"][-1] for r in records if r["clean_train_acc"]),
            "all_at_target": all(w >= train.TARGET for w in worst)}


def summary_table(out: Path) -> str:
    lines = [f"{'params':>7} {'seeds':>5} {'worst3 mean':>11} {'std':>5} {'min':>6} {'best':>6} {'train':>6}  candidate"]
    rows = sorted(((score(r), k) for k, r in load_records(out).items()), key=lambda x: (x[0]["params"], x[1]))
    for s, k in rows:
        lines.append(f"{s['params']:>7,} {len(s['seeds']):>5} {s['last3_min_mean']:>11.3f} {s['last3_min_std']:>5.2f} "
                     f"{s['last3_min_min']:>6.2f} {s['best_mean']:>6.2f} {s['clean_train_mean']:>6.2f}  {k}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", type=int, nargs="*", default=[], help="stage number(s) to train")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=Path("results") / "search", help="where the run records go")
    parser.add_argument("--worker", type=int, default=0, help="this process's share of the runs ...")
    parser.add_argument("--workers", type=int, default=1, help="... out of this many processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--held-out", action="store_true",
                        help="train on 50,000 images, measure the 10,000 held out and the test set (run_held_out)")
    parser.add_argument("--list", action="store_true", help="print the candidates and their parameter counts")
    parser.add_argument("--summary", action="store_true", help="print one line per recorded candidate")
    args = parser.parse_args(argv)
    if data.smoke_mode() and args.out == parser.get_default("out"):
        args.out = Path(tempfile.gettempdir()) / "mnist8k-smoke" / "search"  # smoke runs never land in results/
    unknown = [s for s in args.stage if s not in STAGES]
    if unknown:
        print(f"unknown stage(s) {unknown}; known: {sorted(STAGES)}", file=sys.stderr)
        return 2
    if args.list:
        for stage, cands in STAGES.items():
            for cand in cands:
                print(f"stage {stage}  {parameters(cand):>6,}  {key(cand)}")
        return 0
    if args.summary:
        print(summary_table(args.out))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = list({(key(cand), seed): (cand, seed)  # a candidate in two stages runs once
                 for stage in args.stage for seed in args.seeds for cand in STAGES[stage]}.values())
    mine = [run for i, run in enumerate(runs) if i % args.workers == args.worker]
    for cand, seed in mine:
        if record_path(args.out, cand, seed, args.held_out).exists():
            continue
        start = time.perf_counter()
        print(f"=== {key(cand)} seed {seed} ({parameters(cand):,} parameters){' held out' if args.held_out else ''}",
              flush=True)
        if args.held_out:
            r = run_held_out(cand, seed, args.out)
            outcome = f", held out {min(r['held_out_acc'][-3:]):.2f} %, test {min(r['test_acc'][-3:]):.2f} %"
        else:
            s = run_one(cand, seed, args.out)["summary"]
            outcome = f" {s['last3_min']:.2f} %, best {s['best_test_acc']:.2f} %"
        print(f"=== done in {time.perf_counter() - start:.0f} s: worst of last 3{outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
