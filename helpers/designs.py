"""Designs written as short strings, and a search's records read back: step 12's lesson.

A search tries many small networks. Writing each as a class would bury the
differences in boilerplate, so a design is a string of tokens, in forward order:

    cN   3x3 convolution to N channels, no padding (the map shrinks by 2)
    CN   3x3 convolution to N channels, padding 1 (the map keeps its size)
    sN   depthwise-separable 3x3: a 3x3 per channel, then a 1x1 to N channels
    tN   1x1 convolution to N channels (a transition: mixes channels, sees no neighbours)
    p    2x2 max-pool
    h    the head: 1x1 convolution to 10 maps, global average pooling
    k    a 3x3 head instead: 3x3 convolution to 10 maps (no padding), global average pooling
    fN   a flatten head instead: 1x1 convolution to N maps, flatten, a linear layer to 10

"c8 c8 p c10 c10 c12 c12 h" is two convolutions, a max-pool, four
convolutions and the GAP head. Every convolution but the head's is followed by
BatchNorm (unless ``batchnorm=False``: then it keeps its bias), ReLU and, when
``dropout`` is above 0, ``Dropout2d``: the notebooks' ``conv_bn``. A candidate is scored as a step is,
by ``helpers.records.SeedStats``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from torch import nn

from .records import TARGET, History, SeedStats


def conv_block(in_channels: int, out_channels: int, kind: str = "c", dropout: float = 0.0,
               batchnorm: bool = True) -> nn.Sequential:
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
        elif token in ("h", "k"):
            layers += [nn.Conv2d(channels, 10, 1 if token == "h" else 3, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        else:
            raise ValueError(f"unknown token {token!r} in {arch!r}; use cN, CN, sN, tN, p, h, k or fN")
    if not tokens or tokens[-1][0] not in "hkf" or any(t[0] in "hkf" for t in tokens[:-1]):
        raise ValueError(f"{arch!r} must end with a head, 'h', 'k' or 'fN', and have no other")
    return nn.Sequential(*layers)


def load_records(*folders: Path) -> dict[str, list[dict]]:
    """Every run recorded in ``folders`` (one JSON file per candidate and seed), grouped by candidate:
    a design's seeds from several folders (the search's, a later check's) count together."""
    grouped: dict[str, list[dict]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*__seed*.json")):
            record = json.loads(path.read_text())
            grouped.setdefault(record["key"], []).append(record)
    return grouped


def score_design(records: list[dict]) -> dict:
    """One design over its recorded seeds: ``worst`` (its ``SeedStats``), and the means a table shows beside it."""
    worst = SeedStats.of_records(records)
    return {"seeds": worst.seeds, "params": records[0]["params"], "arch": records[0]["candidate"]["arch"],
            "label": records[0].get("label", records[0]["key"]), "worst": worst,
            "best_mean": statistics.fmean(max(r["test_acc"]) for r in records),
            "clean_train_mean": statistics.fmean(r["clean_train_acc"][-1] for r in records if r["clean_train_acc"]),
            "epochs_at_target_mean": statistics.fmean(sum(a >= TARGET for a in r["test_acc"]) for r in records)}


def score_folders(*folders: Path) -> dict[str, dict]:
    """``score_design`` of every design recorded in ``folders``, by key."""
    return {key: score_design(records) for key, records in load_records(*folders).items()}


def histories(records: list[dict]) -> list[History]:
    """A candidate's recorded runs as ``History`` objects, by seed: plot and tabulate them like a step's."""
    return [History.from_record(r) for r in sorted(records, key=lambda r: r["config"]["seed"])]


def choose(scored: dict[str, dict], budget: int, min_seeds: int = 3, prefer: str = "accuracy",
           min_mean: float = 0.0) -> str:
    """The rule, fixed before looking: among candidates of at most ``budget`` parameters with at least
    ``min_seeds`` seeds, every seed at >= 99.4 % on each of its last 3 epochs, the highest mean of the
    worst of the last 3 (a tie goes to the smaller) or, with ``prefer="size"``, the smallest (a tie goes
    to the higher mean). ``min_mean`` asks for a margin: a design whose seeds all just scrape the bar
    will miss on the next seed, so its mean worst-of-last-3 must reach this too. Raises if none qualifies."""
    if prefer not in ("accuracy", "size"):
        raise ValueError(f"prefer={prefer!r}: use 'accuracy' or 'size'")
    eligible = {k: s for k, s in scored.items() if s["params"] <= budget and s["worst"].n >= min_seeds
                and s["worst"].all_at_target and s["worst"].mean >= min_mean}
    if not eligible:
        margin = f" with a mean of >= {min_mean:.2f} %" if min_mean else ""
        raise ValueError(f"no candidate of <= {budget:,} parameters holds {TARGET} % on {min_seeds}+ seeds{margin}")
    mean, size = (lambda k: round(eligible[k]["worst"].mean, 2)), (lambda k: eligible[k]["params"])
    if prefer == "size":
        return min(eligible, key=lambda k: (size(k), -mean(k)))
    return max(eligible, key=lambda k: (mean(k), -size(k)))


def table(scored: dict[str, dict]) -> str:
    """One line per candidate, smallest first: seeds, worst of the last 3 (mean, std, lowest), best, clean train."""
    lines = [f"{'params':>7} {'seeds':>5} {'worst3 mean':>11} {'std':>5} {'lowest':>6} {'best':>6} {'train':>6}  candidate"]
    for k, s in sorted(scored.items(), key=lambda item: (item[1]["params"], item[0])):
        w = s["worst"]
        lines.append(f"{s['params']:>7,} {w.n:>5} {w.mean:>11.2f} {w.std:>5.2f} "
                     f"{w.lowest:>6.2f} {s['best_mean']:>6.2f} {s['clean_train_mean']:>6.2f}  {k}")
    return "\n".join(lines)


def seed_grid(grouped: dict[str, list[dict]]) -> str:
    """Worst of the last 3 epochs seed by seed, one line per design, misses marked with *: a mean over
    many seeds hides the one seed that fails, and the bar is about every seed."""
    seeds = sorted({r["config"]["seed"] for records in grouped.values() for r in records})
    lines = [f"{'seed':>34}" + "".join(f"{seed:>6} " for seed in seeds)]
    for records in grouped.values():
        worst = SeedStats.of_records(records).worst
        label = f"{records[0]['params']:,} {records[0]['candidate']['arch']}"
        lines.append(f"{label:>34}" + "".join(f"{'':>7}" if seed not in worst else
                                                f"{worst[seed]:>6.2f}{'*' if worst[seed] < TARGET else ' '}" for seed in seeds))
    return "\n".join(lines + [f"{'':>34} * under {TARGET} % on one of the last 3 epochs"])


def against_table(base: dict, others: dict[str, dict], base_label: str = "the final model") -> str:
    """``score_design``s against a base one, each paired on the seeds both ran (``SeedStats.paired``): what
    taking one idea away costs (the ablation), or what a change of recipe is worth, with its interval."""
    lines = [f"{'':41}{'params':>7}{'seeds':>6}{'worst of last 3':>19}{'lowest':>8}{'at the bar':>11}  "
             f"against {base_label}, paired", "-" * 137]
    for label, s in {base_label: base, **others}.items():
        w = s["worst"]
        try:
            against = "" if s is base else str(w.paired(base["worst"]))
        except ValueError:  # a pair needs 2+ seeds that both ran
            against = "(fewer than 2 seeds in common)"
        lines.append(f"{label[:40]:41}{s['params']:>7,}{w.n:>6}{f'{w.mean:.2f} ± {w.std:.2f}':>19}{w.lowest:>8.2f}"
                     f"{f'{w.at_target} of {w.n}':>11}  {against}")
    return "\n".join(lines)


def held_out_table(records: list[dict]) -> str:
    """The held-out check (trained on 50,000 training images), epoch by epoch: the 10,000 held out beside the
    test set. Had choosing on the test set overfitted it, the test column would sit clearly above."""
    records = sorted(records, key=lambda r: r["seed"])
    lines = ["epoch" + "".join(f"{'seed ' + str(r['seed']) + ': held out':>22}{'test':>8}" for r in records)]
    for epoch in range(len(records[0]["test_acc"])):
        lines.append(f"{epoch + 1:>5}" + "".join(f"{r['held_out_acc'][epoch]:>22.2f}{r['test_acc'][epoch]:>8.2f}"
                                                 for r in records))
    lines.append("worst of the last 3:" + "".join(
        f"{'':>3}held out {min(r['held_out_acc'][-3:]):.2f}, test {min(r['test_acc'][-3:]):.2f}" for r in records))
    return "\n".join(lines)
