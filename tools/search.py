"""The design search behind the final model: every candidate trained on several seeds, every run recorded.

    python -m tools.search --list                      # the candidates and their parameter counts
    python -m tools.search --stage 1                   # train stage 1's candidates on seeds 1, 2, 3
    python -m tools.search --stage 1 --worker 0 --workers 2 --threads 1   # two processes side by side
    python -m tools.search --summary                   # one line per candidate, from the records
    python -m tools.search --final --held-out          # the held-out check of the final candidate
    python -m tools.search --ablation                  # the final candidate with one idea removed at a time

A candidate is an architecture written as a short string (the language of
``helpers.designs``: "c8 c8 p c10 c12 c14 h") plus the training recipe.

Each (candidate, seed) run is written to ``results/search/<key>__seed<N>.json``
as soon as it ends (a ``History`` plus the candidate), so an interrupted search
resumes where it stopped and nothing is trained twice. Candidates are scored on
the worst test accuracy of their last 3 epochs, over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from helpers import data, train
from helpers.designs import against_table, build, choose, score_folders, table
from helpers.records import write_json
from helpers.summary import count_parameters

from .project import ROOT
SEEDS = (1, 2, 3)

# The recipe every candidate starts from: step 12's, without dropout (the squeeze was under capacity).
# ``lr`` matters only without the schedule (scheduler="none"), ``batchnorm`` only for the ablation.
BASE = {"dropout": 0.0, "epochs": 15, "batch_size": 128, "optimizer": "adam", "scheduler": "onecycle",
        "max_lr": 0.02, "pct_start": 0.3, "degrees": 7.0, "translate": 0.0, "scale": 0.0, "lr": 0.001,
        "batchnorm": True, "momentum": 0.9, "div_factor": 25.0, "final_div_factor": 1e4, "label_smoothing": 0.0,
        "clip_grad_norm": 0.0, "ema_decay": 0.0}


def candidate(arch: str, **recipe) -> dict:
    unknown = set(recipe) - set(BASE)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {sorted(unknown)}; known: {sorted(BASE)}")
    return {"arch": arch, **BASE, **recipe}


# The smallest public >= 99.4 % run's SGD recipe (see RECIPES below).
SGD_RECIPE = {"optimizer": "sgd", "momentum": 0.9, "max_lr": 0.065, "pct_start": 0.1, "div_factor": 5.0,
              "final_div_factor": 100.0, "batch_size": 64}
# The combination the recipe comparison chose (see RECIPES): clipped SGD, tested on an average of the weights, with
# stronger augmentation; stages 8-10 train their designs with it.
COMBINED = {"degrees": 10.0, "translate": 0.05, **SGD_RECIPE, "clip_grad_norm": 2.0, "ema_decay": 0.999}


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
    # 4: on the CPU, three seeds for the best of stage 3's screen (one seed each on the GPU): the two
    #    ~4,850 designs that led it, with the base recipe and with stronger augmentation.
    4: [
        candidate("c8 c8 p c10 c10 c12 c12 h"),
        candidate("c8 c10 p t8 c12 c12 c14 h", degrees=10.0, translate=0.05),
        candidate("c8 c8 p c10 c10 c12 c12 h", degrees=10.0, translate=0.05),
    ],
    # 5: the squeeze (<= 4,000 parameters), on the CPU: three seeds for the two smallest designs that came
    #    closest to the bar (the separable 3,508 on two CPU seeds, the 3,564 on one GPU seed).
    5: [
        candidate("c8 c12 p t12 s24 s24 s24 h"),
        candidate("c8 c8 p c10 c10 c12 h"),
    ],
    # 6: the chosen 4,884 design missed the bar on 3 of 13 seeds the search never used (6-18): 99.49 on
    #    three seeds was not enough margin. A little more width after the pool, the same recipe, five seeds
    #    each; both stay under the smallest published result at this bar (5,854).
    6: [
        candidate("c8 c8 p c10 c12 c12 c14 h", degrees=10.0, translate=0.05),
        candidate("c8 c10 p c10 c12 c12 c14 h", degrees=10.0, translate=0.05),
    ],
    # 7: under the smallest published run at this bar (4,968 parameters, one run): its layout (padding 1, two
    #    pools, 1x1s to 8 and 10, a 3x3 head) and a neighbour with a wider first layer, on the final's recipe,
    #    three seeds each; the recipe comparison (results/recipes/) had found nothing better on seeds 1-2.
    7: [
        candidate("C4 C8 p C10 C16 p t8 C16 t10 k", degrees=10.0, translate=0.05),
        candidate("C6 C8 p C10 C16 p t8 C14 t10 k", degrees=10.0, translate=0.05),
    ],
    # 8: stage 7's layout held on no seed, our 4,884 (c8 c8 p c10 c10 c12 c12 h) on 13 of 16. With the recipe the
    #    comparison on the final chose (clipped SGD + EMA: the highest paired difference, every seed at the bar;
    #    the rule was fixed before its seeds 3 and 5), three seeds each: our 4,884; the same with padding on the
    #    first convolution or the first two (larger maps: more arithmetic, no parameters); and the published
    #    4,968 layout. Planned before any of its runs.
    8: [candidate(arch, **COMBINED)
        for arch in ("c8 c8 p c10 c10 c12 c12 h", "C8 c8 p c10 c10 c12 c12 h", "C8 C8 p c10 c10 c12 c12 h",
                     "C4 C8 p C10 C16 p t8 C16 t10 k")],
    #    The confirmation (issue #22's rule, fixed before these runs): our 4,884 held seeds 1 and 2 (99.48, 99.51),
    #    the padded ones missed on seed 1 and went no further; the published layout held seed 1 (99.43) and gets
    #    its seeds 2 and 3 as planned (they ran after the 4,884's ten). The 4,884 alone goes on to seeds 3-10
    #    (--stage 8 --only "c8 c8 p c10 c10 c12 c12 h" --seeds 3 ... 10). It becomes the final if all 10 seeds hold
    #    the bar on each of the last 3 epochs with a mean worst-of-last-3 of at least 99.50 %; otherwise the final
    #    stays stage 9's 5,852 with this recipe (10 of 10 at the bar, mean 99.505 %).
    # 9: the recipe combination (clipped SGD + EMA) on the final itself, on more seeds (6-10 first): started
    #    when seeds 1, 2 and 4 of it were in (99.49, 99.55, 99.55), before seeds 3 and 5. A final that holds
    #    on any seed needs many; FINAL's own recipe has seeds 1-18 on record to pair with.
    9: [candidate("c8 c10 p c10 c12 c12 c14 h", **COMBINED)],
    # 10: the squeeze with the combined recipe: the two designs of at most 4,000 parameters that came closest
    #     with Adam (stage 5: the separable 3,508 at 99.39 %, the 3,564 at 99.28 %), seeds 1-3. Planned when stage
    #     8's 4,884 had seeds 1-8 in, before any run of these.
    10: [candidate(arch, **COMBINED)
         for arch in ("c8 c12 p t12 s24 s24 s24 h", "c8 c8 p c10 c10 c12 h")],
}


BUDGET = 5_000  # the aim for the final model's parameters
LIMIT = 7_999  # the series' bar: fewer than 8,000
SQUEEZE_BUDGET = 4_000  # the squeeze's
UNSEEN = ROOT / "results" / "unseen_seeds"  # a chosen design trained again on seeds the search never used
MIN_SEEDS = 5  # step 12's rule: at least this many recorded seeds, every one of them at the bar
MARGIN_SEEDS, MARGIN_MEAN = 10, 99.50  # the rule with a margin (issue #22): 10+ seeds, a mean worst-of-last-3 >= this
SMALL = ROOT / "results" / "small_designs"  # designs of at most 4,968 parameters with the combined recipe (stage 8)
RECIPE_RUNS = ROOT / "results" / "recipes"  # the recipes on SEARCHED (--recipes) and the combination's seeds 6-10 (stage 9)

# Step 12's first rule (designs.choose over seeds 1-3, <= BUDGET) chose c8 c8 p c10 c10 c12 c12 h with
# stronger augmentation (4,884 parameters); on 13 unseen seeds (UNSEEN: 6-10 from step 13's first run,
# 11-18 from --final) 3 missed the bar. The final rule counts every recorded seed of a design, needs
# MIN_SEEDS of them and takes the smallest under LIMIT that holds on all (step 12 shows both; a test checks
# FINAL is what it picks). On seeds 1-5 it took stage 6's c8 c8 p c10 c12 c12 c14 h (5,524); on unseen
# seeds 6-18 that one missed once (seed 14), and stage 6's other design, trained on the same seeds
# (--stage 6 --only ... --out UNSEEN), held on all 18: SEARCHED, with the search's recipe (Adam).
SEARCHED = candidate("c8 c10 p c10 c12 c12 c14 h", degrees=10.0, translate=0.05)


# Recipes that cost no parameters (issue: a final with margin on any seed), each tried on SEARCHED, paired on
# the seeds it already has (1-5). The SGD recipe is the smallest public >= 99.4 % run's (4,968 parameters):
# SGD momentum 0.9, one-cycle to 0.065 after 10 % of the steps from 0.065 / 5, down to that / 100, batch 64;
# our augmentation kept. EMA decay 0.999 (about two epochs at batch 128) was fixed before any run.
RECIPES: dict[str, dict] = {
    "the final's recipe (Adam one-cycle 0.02)": SEARCHED,  # again, in the same torch as the others: pairs stay pairs
    "weight averaging (EMA 0.999)": SEARCHED | {"ema_decay": 0.999},
    "label smoothing 0.1": SEARCHED | {"label_smoothing": 0.1},
    "SGD one-cycle (the public run's)": SEARCHED | SGD_RECIPE,
    "SGD one-cycle + gradient clipping 2": SEARCHED | SGD_RECIPE | {"clip_grad_norm": 2.0},
    # the best combination: the two whose intervals reached highest (clipped SGD, EMA), together. Which recipe
    # the smaller designs get (fixed when seeds 1-2 of this one were in, before 3-5): the highest mean paired
    # difference against the final's own recipe on seeds 1-5, every seed at the bar; a tie keeps the final's own.
    "SGD one-cycle + clipping 2 + EMA 0.999": SEARCHED | COMBINED,
}

# The final: the rule with a margin over every folder of records (search, unseen seeds, recipes, small designs),
# the smallest design under LIMIT with MARGIN_SEEDS+ seeds, all at the bar, mean >= MARGIN_MEAN. Stage 8's
# 4,884 held the bar on seeds 1-6 but could no longer reach the mean (99.48 %), so it is SEARCHED with the
# combined recipe (stage 9: 10 of 10 seeds, mean 99.505 %). A test checks the rule picks this. The ablation
# and the held-out check run on FINAL.
FINAL = RECIPES["SGD one-cycle + clipping 2 + EMA 0.999"]


def every_design() -> dict[str, dict]:
    """Every recorded design and recipe, scored over all its seeds. SEARCHED ran seeds 1-5 twice (the search,
    then the recipe comparison, to pair in one torch); the search's runs count, the repeats do not."""
    return score_folders(RECIPE_RUNS, SMALL) | score_folders(ROOT / "results" / "search", UNSEEN)


def final_rule(scored: dict[str, dict]) -> str:
    """The rule with a margin (step 12), over ``every_design()``."""
    return choose(scored, LIMIT, min_seeds=MARGIN_SEEDS, prefer="size", min_mean=MARGIN_MEAN)


def ablations(cand: dict) -> dict[str, dict]:
    """The final model with one idea taken away (or, for one already off, put back), by a short label."""
    body = cand["arch"].rsplit(" ", 1)[0]
    gap = parameters(cand)
    width = min(range(1, 33), key=lambda n: abs(parameters(cand | {"arch": f"{body} f{n}"}) - gap))
    # Without the schedule, a constant lr each optimizer's users start from: Adam's default 0.001, SGD's 0.01.
    constant = {"scheduler": "none"} | ({"lr": 0.01} if cand["optimizer"] == "sgd" else {})
    lr_label = f"constant lr ({cand['optimizer'].replace('sgd', 'SGD').replace('adam', 'Adam')}, {(cand | constant)['lr']:g})"
    return {
        "no BatchNorm": cand | {"batchnorm": False},
        ("no dropout" if cand["dropout"] > 0 else "dropout 0.02 (the journey's)"):
            cand | {"dropout": 0.0 if cand["dropout"] > 0 else 0.02},
        "no augmentation": cand | {"degrees": 0.0, "translate": 0.0, "scale": 0.0},
        lr_label: cand | constant,
        f"flatten + linear head (f{width})": cand | {"arch": f"{body} f{width}"},
    }  # the weight average taken away is a recipe of RECIPES ("SGD one-cycle + gradient clipping 2"): already recorded


def key(cand: dict) -> str:
    """A file-name-safe name: the architecture, then every recipe field that differs from BASE."""
    parts = [cand["arch"].replace(" ", "-")]
    value = {name: cand.get(name, BASE[name]) for name in BASE}  # fields added to BASE later: their default
    parts += [f"{name}={value[name]:g}" if isinstance(value[name], float) else f"{name}={value[name]}"
              for name in BASE if value[name] != BASE[name]]
    return "_".join(parts)


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


def run_one(cand: dict, seed: int, out: Path, label: str | None = None) -> dict:
    """Train one candidate on one seed and record it (atomically: a killed run leaves no record).
    ``label`` names what an ablation took away, for the tables that show it."""
    train.set_seed(seed)
    model = build_candidate(cand)
    history = train.fit(model, config_of(cand, seed), progress=False)
    record = history.record() | {"candidate": cand, "key": key(cand)}
    if label is not None:
        record["label"] = label
    write_json(record_path(out, cand, seed), record)
    return record


HELD_OUT = 10_000  # the last 10,000 training images, never trained on in the held-out check


def run_held_out(cand: dict, seed: int, out: Path) -> dict:
    """The held-out check: train on the first 50,000 training images; after every epoch measure
    the 10,000 held out and the test set. Did choosing on the test set flatter the test numbers?"""
    train.set_seed(seed)
    config = config_of(cand, seed)
    device = train.choose_device(verbose=False)
    images, labels = data.load_mnist(train=True)
    keep = len(labels) - (HELD_OUT if not data.smoke_mode() else len(labels) // 5)
    train_loader = data.FastLoader(images[:keep], labels[:keep], config.batch_size, shuffle=True, seed=seed,
                                   degrees=config.degrees, translate=config.translate, scale=config.scale, device=device)
    held_out = data.FastLoader(images[keep:], labels[keep:], train.EVAL_BATCH, device=device)
    _, test_loader = train.make_loaders(config, device)
    history = train.fit(build_candidate(cand), config, device=device, progress=False, quiet=True,
                        loaders=(train_loader, test_loader), measure={"held_out": held_out})
    record = {"candidate": cand, "key": key(cand), "seed": seed, "train_images": keep, "held_out_images": len(labels) - keep,
              "params": history.params, "device": history.device, "held_out_acc": history.extra_acc["held_out"],
              "test_acc": history.test_acc}
    write_json(record_path(out, cand, seed, held_out=True), record)
    return record


def summary_table(out: Path) -> str:
    return table(score_folders(out))


def paired_table(out: Path) -> str:
    """Each recipe of a folder against the searched design's own recipe recorded there, seed by seed
    (``designs.against_table``): python -m tools.search --recipes --summary."""
    scored = score_folders(out)
    base = scored.pop(key(SEARCHED), None)
    if base is None:
        return f"no record of the searched design's own recipe ({key(SEARCHED)}) in {out}"
    return against_table(base, {s["label"]: s for s in scored.values()}, "the search's recipe (Adam)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", type=int, nargs="*", default=[], help="stage number(s) to train")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "search", help="where the run records go")
    parser.add_argument("--worker", type=int, default=0, help="this process's share of the runs ...")
    parser.add_argument("--workers", type=int, default=1, help="... out of this many processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--only", nargs="*", default=[], metavar="ARCH",
                        help="of the stages' candidates, train only those of these designs (e.g. on unseen seeds)")
    parser.add_argument("--final", action="store_true", help="train the final candidate (FINAL) instead of a stage")
    parser.add_argument("--ablation", action="store_true",
                        help="train the final candidate's ablations (default --out results/ablation)")
    parser.add_argument("--recipes", action="store_true",
                        help="train FINAL with each recipe of RECIPES (default --out results/recipes)")
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
    missing = [arch for arch in args.only if not any(c["arch"] == arch for stage in args.stage for c in STAGES[stage])]
    if missing:
        print(f"--only {missing}: no such design in stage(s) {args.stage}; --list shows them", file=sys.stderr)
        return 2
    if args.list:
        for stage, cands in STAGES.items():
            for cand in cands:
                print(f"stage {stage}  {parameters(cand):>6,}  {key(cand)}")
        return 0
    if args.ablation and args.out == parser.get_default("out"):
        args.out = args.out.parent / "ablation"
    if args.recipes and args.out == parser.get_default("out"):
        args.out = args.out.parent / "recipes"
    if args.summary:
        print(paired_table(args.out) if args.recipes else summary_table(args.out))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = [(cand, None) for stage in args.stage for cand in STAGES[stage] if not args.only or cand["arch"] in args.only]
    chosen += [(FINAL, None)] if args.final else []
    chosen += [(cand, label) for label, cand in ablations(FINAL).items()] if args.ablation else []
    chosen += [(cand, label) for label, cand in RECIPES.items()] if args.recipes else []
    runs = list({(key(cand), seed): (cand, seed, label)  # a candidate in two stages runs once
                 for seed in args.seeds for cand, label in chosen}.values())
    mine = [run for i, run in enumerate(runs) if i % args.workers == args.worker]
    for cand, seed, label in mine:
        if record_path(args.out, cand, seed, args.held_out).exists():
            continue
        start = time.perf_counter()
        print(f"=== {key(cand)} seed {seed} ({parameters(cand):,} parameters){' held out' if args.held_out else ''}",
              flush=True)
        if args.held_out:
            r = run_held_out(cand, seed, args.out)
            outcome = f", held out {min(r['held_out_acc'][-3:]):.2f} %, test {min(r['test_acc'][-3:]):.2f} %"
        else:
            s = run_one(cand, seed, args.out, label)["summary"]
            outcome = f" {s['last3_min']:.2f} %, best {s['best_test_acc']:.2f} %"  # last3_min: the worst of the last 3
        print(f"=== done in {time.perf_counter() - start:.0f} s: worst of last 3{outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
