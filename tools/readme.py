"""The generated sections of README.md and docs/, and images/journey.png, from the records in results/.

    python -m tools.readme      # the same as python -m tools.journey --readme-only

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in
its page (``PAGES``); nothing between those marks is typed by hand.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import designs  # noqa: E402
from helpers.records import TARGET, History, SeedStats  # noqa: E402

from .bench import BENCH_LABELS  # noqa: E402
from .project import RESULTS, ROOT, TIMES, badge, load_seeds, notebook_paths, step_title  # noqa: E402
from .search import (BUDGET, FINAL, LIMIT, MARGIN_MEAN, MARGIN_SEEDS, MIN_SEEDS, RECIPE_RUNS, SEARCHED,  # noqa: E402
                     SQUEEZE_BUDGET, UNSEEN, ablations, every_design, key)

README = ROOT / "README.md"
DOCS = ROOT / "docs"


def journey_table() -> str:
    """The README's results table, one row per notebook, from results/NN_topic.json."""
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    lines = ["| step | notebook | parameters | best test % (epoch) | worst of last 3 % | epochs ≥ 99.4 % "
             "| worst of last 3 over seeds: mean ± std (lowest) | run time | Colab |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for path in notebook_paths():
        record = RESULTS / f"{path.stem}.json"
        link = f"[{step_title(path)}](notebooks/{path.name})"
        if record.exists():
            h = History.load(record)
            s = h.summary()
            seeds = load_seeds(path.stem)
            w = SeedStats.of_table(seeds) if seeds else None
            spread = f"{w.mean:.2f} ± {w.std:.2f} ({w.lowest:.2f}), {w.n} seeds" if w else "one seed"
            numbers = (f"{s['params']:,} | {s['best_test_acc']:.2f} ({s['best_epoch']}) | {h.worst_of_last3:.2f} | "
                       f"{len(s['epochs_at_target'])} of {s['epochs']} | {spread}")
        else:
            numbers = "not run yet | | | |"
        t = times.get(path.stem)
        took = ((f"{t['seconds'] / 60:.0f} min" if t["seconds"] >= 30 else "under 1 min")
                + ("¹" if t["extra_seeds"] == "recorded" else "")) if t else ""
        lines.append(f"| {path.stem[:2]} | {link} | {numbers} | {took} | {badge(path.stem)} |")
    histories = [History.load(RESULTS / f"{p.stem}.json") for p in notebook_paths()
                 if (RESULTS / f"{p.stem}.json").exists()]
    if times:
        extra = {name: switched_seconds(name) for name in times}
        # A notebook timed with its seeds trained counts without them in the default total: what they took comes off.
        default = sum(t["seconds"] - (extra[name] if t["extra_seeds"] == "trained" else 0) for name, t in times.items())
        lines += ["", "Run time: the whole notebook, as `make journey` last executed it on "
                      f"{', '.join(sorted({t['device'] for t in times.values()}))}; ¹ with `TRAIN_SEEDS = False`: the step's "
                      f"own run trained, the other seeds read from `results/` (without ¹: the seeds trained too). In all, "
                      f"about {default / 60:.0f} min for these {len(times)} notebooks with `TRAIN_SEEDS = False`; "
                      f"`make journey SEEDS=train` adds about {sum(extra.values()) / 60:.0f} min, what their other seeds "
                      "took when they were recorded."]
    if histories:
        devices = sorted({h.device for h in histories})
        minutes = sum(sum(h.seconds) for h in histories) / 60
        lines += ["", f"Training time of these {len(histories)} runs (one per step, seed runs and the squeeze not "
                      f"counted): {minutes:.0f} min on {', '.join(devices)}."]
    return "\n".join(lines)


def switched_seconds(name: str) -> float:
    """What ``TRAIN_SEEDS = True`` adds to a notebook: the recorded training time of the runs it otherwise reads
    (its seed table's runs but its own, and step 01's flatten head). Step 12 reads the search's records either way."""
    tables = [] if name.startswith("12") else sorted(RESULTS.glob(f"{name[:2]}_*_seeds.json"))
    total = 0.0
    for table in tables:
        histories = json.loads(table.read_text())["histories"]
        total += sum(sum(h["seconds"]) for h in (histories[1:] if table.name == f"{name}_seeds.json" else histories))
    return total


def headline() -> str:
    """The README's headline claim, from the final notebook's seed table."""
    records = sorted(RESULTS.glob("[0-9][0-9]_*seeds.json"))
    if not records:
        return "*The final model has not been run yet.*"
    summary = json.loads(records[-1].read_text())
    stats, worst = summary["stats"], SeedStats.of_table(summary)
    n, held, seeds = worst.n, worst.at_target, worst.seeds
    scored = every_design()
    chosen = scored.get(key(FINAL))
    listed = spans(seeds) + (f"; the rule chose the final on seeds {spans(chosen['seeds'])}, not these"
                             if chosen and not set(seeds) & set(chosen["seeds"]) else "")
    return (f"**{summary['params']:,} parameters, {summary['epochs']} epochs.** Over {n} seeds ({listed}), the worst of the last "
            f"3 epochs is {worst.mean:.2f} % ± {worst.std:.2f} on average "
            f"(lowest seed: {worst.lowest:.2f} %); {held} of {n} seeds stay at ≥ {TARGET} % on each "
            f"of the last 3 epochs. Best epochs: {stats['best']['mean']:.2f} % ± {stats['best']['std']:.2f}. "
            f"(`{records[-1].relative_to(ROOT)}`)" + chosen_on_line(chosen, seeds, held)
            + smaller_line(scored) + earlier_choices_line() + squeeze_line(scored))


def smaller_line(scored: dict[str, dict]) -> str:
    """The smallest design that held the bar on every one of 10+ seeds, when the margin ruled it out of the final.
    ``scored``: ``every_design()``."""
    smallest = designs.choose(scored, LIMIT, min_seeds=MARGIN_SEEDS, prefer="size")
    if smallest == key(FINAL):
        return ""
    s, w = scored[smallest], scored[smallest]["worst"]
    same = smallest.partition("_")[2] == key(FINAL).partition("_")[2]  # the key: the design, then the recipe
    return (f"\n\nSmaller, without the margin: **{s['params']:,} parameters** (`{s['arch']}`"
            f"{', the same recipe' if same else ''}) held the bar on "
            f"{w.at_target} of {w.n} seeds ({spans(w.seeds)}), worst of the last 3 epochs {w.mean:.2f} % ± {w.std:.2f}, "
            f"lowest {w.lowest:.2f} %: under the {MARGIN_MEAN:.2f} % mean the rule asks for.")


def spans(seeds: Iterable[int]) -> str:
    """Seeds as runs of consecutive numbers: [1, 2, 3, 4, 7] -> "1–4, 7"."""
    runs: list[list[int]] = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def chosen_on_line(chosen: dict | None, seeds: list[int], held: int) -> str:
    """The evidence the rule with a margin chose on (every recorded seed of the final design and recipe),
    and the count over those and the final notebook's ``seeds`` (``held`` of them at the bar) together."""
    if not chosen:
        return ""
    w = chosen["worst"]
    together = (f" With the final notebook's {len(seeds)}, {w.at_target + held} of {w.n + len(seeds)} seeds hold the bar."
                if not set(seeds) & set(w.seeds) else "")
    return (f"\n\nThe rule with a margin (step 13: {MARGIN_SEEDS}+ seeds, every one at the bar, a mean of at least "
            f"{MARGIN_MEAN:.2f} %) chose it on {w.n} recorded seeds ({spans(w.seeds)}): {w.at_target} of {w.n} hold the bar, "
            f"worst of the last 3 epochs "
            f"{w.mean:.2f} % ± {w.std:.2f}, lowest {w.lowest:.2f} %." + together)


def earlier_choices_line() -> str:
    """What became of the other designs checked on seeds they were not chosen on: why the rule needs many seeds."""
    searched = designs.score_folders(RESULTS / "search")
    first = designs.choose(searched, BUDGET)
    on_search_seeds = designs.choose(searched, LIMIT, min_seeds=MIN_SEEDS, prefer="size")
    parts = []
    for k, records in designs.load_records(UNSEEN).items():
        s = designs.score_design(records)
        w = s["worst"]
        missed = [f"seed {seed}: {worst:.2f} %" for seed, worst in w.misses.items()]
        which = {first: ", the first rule's choice", on_search_seeds: ", step 12's rule on the search's seeds",
                 key(SEARCHED): ", step 12's choice, with Adam"}.get(k, "")
        parts.append(f"{s['params']:,} parameters (`{s['arch']}`{which}) held the bar "
                     f"on {w.at_target} of {w.n} seeds ({spans(w.seeds)}; mean {w.mean:.2f} %"
                     + (f"; {', '.join(missed)}" if missed else "") + ")")
    if not parts:
        return ""
    return (f"\n\nDesigns checked on seeds they were not chosen on (`{UNSEEN.relative_to(ROOT)}/`, worst of the last 3 epochs): "
            + "; ".join(parts) + f". That is why step 12's rule counts every recorded seed of a design and needs at least {MIN_SEEDS}, "
            f"every one at the bar, and step 13's asks for {MARGIN_SEEDS} and a mean of at least {MARGIN_MEAN:.2f} %.")


def squeeze_line(scored: dict[str, dict]) -> str:
    """One sentence on the squeeze: the smallest recorded design that holds the bar on 3+ seeds, if one does.
    ``scored``: ``every_design()``."""
    if not scored:
        return ""
    try:
        s = scored[designs.choose(scored, SQUEEZE_BUDGET)]
    except ValueError:
        small = [s for s in scored.values() if s["params"] <= SQUEEZE_BUDGET and s["worst"].n >= 2]
        closest = max(small, key=lambda s: s["worst"].mean, default=None)
        return (f"\n\nThe squeeze (≤ {SQUEEZE_BUDGET:,} parameters) has no design yet that holds the bar on 3 seeds"
                + (f"; the closest, {closest['params']:,} parameters (`{closest['arch']}`), averages "
                   f"{closest['worst'].mean:.2f} % (lowest {closest['worst'].lowest:.2f} %) over {closest['worst'].n} "
                   f"seeds." if closest else "."))
    w = s["worst"]
    return (f"\n\nSqueezed to **{s['params']:,} parameters** (`{s['arch']}`), the search's records hold the bar on "
            f"{w.n} of {w.n} seeds: worst of the last 3 epochs {w.mean:.2f} % "
            f"± {w.std:.2f} (lowest {w.lowest:.2f} %).")


def evidence(name: str) -> SeedStats:
    """A step's worst-of-last-3 accuracy per seed: its seed table (results/NAME_seeds.json) where it ran several,
    else its one run."""
    seeds = load_seeds(name)
    if seeds:
        return SeedStats.of_table(seeds)
    h = History.load(RESULTS / f"{name}.json")
    return SeedStats({h.config["seed"]: h.worst_of_last3})


def parameters_of(name: str) -> int:
    seeds = load_seeds(name)
    return seeds["params"] if seeds else History.load(RESULTS / f"{name}.json").params


def compare(before: str, after: str) -> str:
    """Step ``before`` against step ``after`` on the seeds both ran (``versus``)."""
    return versus(evidence(before), evidence(after))


def versus(a: SeedStats, b: SeedStats) -> str:
    """a → b, means over seeds, and the paired difference on their common seeds with its 95 % t interval
    (``SeedStats.paired``: the rule the notebooks teach). Under 2 common seeds there is no interval."""
    common = set(a.worst) & set(b.worst)
    if len(common) < 2:
        return f"{a.mean:.2f} % → {b.mean:.2f} % ({b.mean - a.mean:+.2f} points; under 2 common seeds: no paired interval)"
    a, b = (SeedStats({seed: s.worst[seed] for seed in sorted(common)}) for s in (a, b))  # the means it pairs
    return f"{a.mean:.2f} % → {b.mean:.2f} %: {b.paired(a)}"


def design_table() -> str:
    """The README's design questions, each answered from the records of the steps that tried it.

    Accuracies are the worst of the last 3 epochs, averaged over each step's seeds.
    """
    def first_epoch(name: str) -> float:
        return History.load(RESULTS / f"{name}.json").test_acc[0]

    def params(name: str) -> str:
        return f"{parameters_of(name):,}"

    rows = [
        ("How many layers?", "Enough 3×3 convolutions that the output, GAP included, sees the whole digit (about 20 of "
         "28 px)", "Step 01's receptive-field table and picture; every step keeps 28 at the output"),
        ("Where does max-pooling go?", "Once, after receptive field 5, when edges and stroke pieces exist",
         f"Step 10 → 11 (pool one convolution earlier, {params('10_channel_distribution')} → "
         f"{params('11_maxpool_position')} parameters): {compare('10_channel_distribution', '11_maxpool_position')}"),
        ("Why 1×1 convolutions after the pool?", "In steps 01–11 a 1×1 cuts the channel count cheaply (it sees no "
         "neighbours), so the next block starts small; the design step 12's search chose has none",
         "Step 01: the transition 32 → 8 costs 264 parameters"),
        ("Fully connected head?", "No: a 1×1 convolution to 10 maps, then global average pooling",
         f"Step 01, GAP ({params('01_vanilla')} parameters) → flatten + linear ({params('01_flatten_head')}): "
         f"{compare('01_vanilla', '01_flatten_head')}; GAP is the cheaper head"),
        ("BatchNorm?", "After every convolution but the last",
         f"Step 02 → 03: {compare('02_fewer_parameters', '03_batchnorm')}; after one epoch "
         f"{first_epoch('02_fewer_parameters'):.2f} % → {first_epoch('03_batchnorm'):.2f} % (recorded seed)"),
        ("Dropout?", "`Dropout2d` (whole maps), small: 0.05 in steps 04–08, 0.02 in 09–11; none in the final model (see the last row)",
         f"Step 03 → 04 (0.05): {compare('03_batchnorm', '04_dropout')}; step 08 → 09 (0.05 → 0.02): "
         f"{compare('08_learning_rate', '09_dropout_value')}"),
        ("Augmentation?", "Random rotation ±7° in the journey; the final model also shifts (±10°, up to 5 %)",
         f"Step 04 → 05: {compare('04_dropout', '05_augmentation')}"),
        ("LR schedule?", "One-cycle: Adam in steps 06–12 (peak 0.02 from step 08); the final: SGD with momentum 0.9, "
         "peak 0.065, gradients clipped at norm 2 (step 13's recipe table)",
         f"Step 05 → 06 (one-cycle to 0.01): {compare('05_augmentation', '06_lr_schedule')}; step 06 → 08 (peak "
         f"0.02): {compare('06_lr_schedule', '08_learning_rate')}"),
        ("Batch size?", "128 in steps 01–12 (step 07 and the search tried 64); 64 in the final's SGD recipe",
         f"Step 06 → 07 (64): {compare('06_lr_schedule', '07_batch_size')}, for twice the steps per epoch"),
        ("Where do the channels go?", "Few early (8, 12), more late (16–20)",
         f"Step 09 → 10 ({params('09_dropout_value')} → {params('10_channel_distribution')} parameters): "
         f"{compare('09_dropout_value', '10_channel_distribution')}"),
    ]
    rows += averaging_rows() + ablation_rows()
    lines = ["| question | what we do | what the runs showed (worst of the last 3 epochs, mean over seeds) |",
             "|---|---|---|"]
    lines += [f"| {q} | {do} | {showed} |" for q, do, showed in rows]
    lines += ["", "Each difference is paired: the same seeds on both sides, the mean of their differences and its "
                  "95 % t interval; \"shown\" when the interval excludes zero, \"not shown\" otherwise (which is not "
                  "\"no effect\"). The notebooks use the same rule (step 01's primer). How small the final model can "
                  "go: see the headline above."]
    return "\n".join(lines)


def averaged_and_raw(runs: list[dict]) -> tuple[SeedStats, SeedStats]:
    """Each run's worst of the last 3 epochs with its averaged weights (what it tested) and with its raw weights."""
    runs = [History.from_record(r) for r in runs if r.get("raw_test_acc")]
    return SeedStats.of_histories(runs), SeedStats.of_raw_weights(runs)


def averaging_rows() -> list[tuple[str, str, str]]:
    """The weight average against the raw weights of the same runs: the final's seeds (step 13)."""
    runs = designs.load_records(RECIPE_RUNS).get(key(FINAL), [])
    table = RESULTS / "13_final_seeds.json"
    runs += json.loads(table.read_text())["histories"] if table.exists() else []
    averaged, raw = averaged_and_raw(runs)
    if raw.n < 2:
        return []
    return [("Averaged weights?", "The final tests an exponential moving average of its weights (decay 0.999), not the "
             "last weights trained",
             f"The same runs, raw → averaged weights, {raw.n} seeds (step 13): {raw.mean:.2f} % → {averaged.mean:.2f} %: "
             f"{averaged.paired(raw)}; the raw weights hold the bar on {raw.at_target} of {raw.n} seeds, the average on "
             f"{averaged.at_target}")]


def ablation_rows() -> list[tuple[str, str, str]]:
    """The design table's last row: the final model with one idea taken away at a time (results/ablation/)."""
    recorded = designs.score_folders(RESULTS / "ablation")
    ablated = {k: recorded[k] for k in map(key, ablations(FINAL).values()) if k in recorded}  # the final's, not earlier
    if not ablated:
        return []
    final = every_design()[key(FINAL)]

    parts = [f"{s['label']} ({s['params']:,}): {versus(final['worst'], s['worst'])}"
             for s in sorted(ablated.values(), key=lambda s: s["worst"].mean)]
    return [("What is each idea worth in the final model?", f"Ranked by what taking it away costs the final "
             f"`{final['arch']}` ({final['params']:,} parameters), most first", f"One idea taken away at a time, on seeds "
             f"{spans({seed for s in ablated.values() for seed in s['seeds']})}, paired with the final on the same seeds ("
             f"step 13, `results/ablation/`): " + "; ".join(parts))]


def measured_model(record: dict) -> str:
    """Which model a speed or accuracy record measured: the final notebook's present one, or an earlier one
    (a record without a parameter count predates the search's final: it measured the one before)."""
    params = record.get("params") or record.get("reference", {}).get("params")
    final = RESULTS / f"{Path(record['notebook']).stem}.json"
    if params is not None and final.exists() and History.load(final).params == params:
        return f"{record['notebook']}'s model ({params:,} parameters)"
    size = f"{params:,} parameters, " if params else ""
    return f"an earlier final model ({size}measured before step 12's search chose the present one)"


def bench_table() -> str:
    """The README's performance table, from results/bench_<device>.json (``make bench``)."""
    lines = []
    for record in sorted(RESULTS.glob("bench_*.json")):
        b = json.loads(record.read_text())
        lines += [f"On **{b['device']}**, torch {b['torch']}, {b['threads']} threads, {measured_model(b)} and its config, "
                  f"median of {b['repeats']} alternating runs (`{record.relative_to(ROOT)}`):", "",
                  "| pipeline | s / training epoch | images / s | s / test pass | peak memory added (MiB) |",
                  "|---|---:|---:|---:|---:|"]
        for pipeline, row in b["median"].items():
            name = BENCH_LABELS.get(b["device"].split()[0], BENCH_LABELS["cpu"])[pipeline].format(
                workers=b["reference_workers"])
            lines.append(f"| {name} | {row['train_seconds']:.2f} | {row['train_images_per_s']:,.0f} | "
                         f"{row['test_seconds']:.2f} | {row['peak_mib']:,.0f} |")
        speedup = b["speedup"]
        if "train_graph" in speedup:
            lines += ["", f"Speed-up per training epoch against the usual pipeline: **{speedup['train_graph']:.1f}×** "
                          f"with the CUDA graph, {speedup['train']:.1f}× eager (the graph alone: "
                          f"{speedup['train_graph_vs_eager']:.1f}×); {speedup['test']:.1f}× per test pass.", ""]
        else:
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
        lines += [f"One training step of {measured_model(r)} through helpers, batch {r['batch_size']}, on "
                  f"**{r['device']}** (`{record.relative_to(ROOT)}`, mean of {r['steps']} steps):", "",
                  "| phase | ms / step | share |", "|---|---:|---:|"]
        lines += [f"| {name} | {ms:.2f} | {100 * ms / r['step_ms']:.0f} % |" for name, ms in phases.items()]
        lines += [f"| **whole step** | **{r['step_ms']:.2f}** | {r['step_ms'] * r['steps_per_epoch'] / 1000:.1f} s "
                  f"per epoch of {r['steps_per_epoch']} steps |", "",
                  "Inside the step, by kind of operation (`torch.profiler`, share of the operations' own time): "
                  + ", ".join(f"{kind} {share:.0f} %" for kind, share in r["op_kinds_percent"].items()) + "."]
        g = r.get("cuda_graph")
        if g:
            lines += ["", "The same training step replayed as a CUDA graph (`helpers/_machinery/cuda_graph.py`, which makes the "
                          "batch inside the graph too), against the eager step, per step over whole epochs:", "",
                          "| | µs / step | launches / step | GPU kernels and copies / step |", "|---|---:|---:|---:|"]
            lines += [f"| {name} | {row['us_per_step']:,.0f} | {row['launches_per_step']:.1f} | "
                      f"{row['gpu_activities_per_step']:.0f} |" for name, row in g.items()]
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
    held = SeedStats.of_table(r["reference"]).at_target
    lines += ["", f"{measured_model(r)} and its config, {r['reference']['epochs']} epochs, same initial weights per "
                  f"seed; through the reference pipeline {held} of {len(r['reference']['rows'])} seeds stay at "
                  f"≥ {TARGET} % on each of the last 3 epochs (`{record.relative_to(ROOT)}`, on {r['device']})."]
    for gpu_record in sorted(RESULTS.glob("*_seeds_cuda.json")):  # `python -m tools.bench --seeds-here` on a GPU
        g = json.loads(gpu_record.read_text())
        gpu, n = g["stats"]["last3_min"], len(g["rows"])
        held = SeedStats.of_table(g).at_target
        # the CPU's seeds of the same model: the notebook's own record, or the copy the reference record keeps
        cpu_tables = [t for t in (load_seeds(gpu_record.name.removesuffix("_seeds_cuda.json")), r.get("helpers"))
                      if t and t["params"] == g["params"]]
        against = (f"CPU → GPU: {versus(SeedStats.of_table(cpu_tables[0]), SeedStats.of_table(g))}; " if cpu_tables
                   else "no CPU record of that model to compare with; ")
        lines += ["", f"On a GPU ({g['device']}, torch {g['torch']}), `fit` trained {measured_model(g)} with "
                      f"seeds {', '.join(str(row['seed']) for row in g['rows'])}: worst of the last 3 epochs "
                      f"{gpu['mean']:.2f} % ± {gpu['std']:.2f} (lowest {gpu['min']:.2f} %); {against}{held} of {n} "
                      f"seeds at ≥ {TARGET} % on each of the last 3 epochs (`{gpu_record.relative_to(ROOT)}`)."]
    return "\n".join(lines)


SECTIONS = {"journey-table": journey_table, "headline": headline, "design": design_table, "bench": bench_table,
            "accuracy": accuracy_table, "profile": profile_summary}
# Which page holds which section: the README is for learners; measurements and design evidence sit in docs/.
PAGES = {README: ("headline", "journey-table"), DOCS / "design.md": ("design",),
         DOCS / "speed.md": ("bench", "profile", "accuracy"), DOCS / "search-history.md": ()}


def readme_sections(text: str) -> dict[str, tuple[int, int]]:
    """Where each generated section sits in a page: between <!-- NAME:start --> and <!-- NAME:end -->."""
    spans = {}
    for name in SECTIONS:
        start_mark, end_mark = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start_mark in text:
            spans[name] = (text.index(start_mark) + len(start_mark), text.index(end_mark))
    return spans


def update_page(page: Path) -> bool:
    """Regenerate one page's sections. True if it changed."""
    text = page.read_text()
    new = text
    for name in SECTIONS:
        span = readme_sections(new).get(name)
        if span:
            new = new[:span[0]] + "\n" + SECTIONS[name]() + "\n" + new[span[1]:]
    if new != text:
        page.write_text(new)
    return new != text


def update_readme() -> bool:
    """Regenerate every page's generated sections and images/journey.png. True if any page changed."""
    changed = [update_page(page) for page in PAGES]
    records = [RESULTS / f"{p.stem}.json" for p in notebook_paths() if (RESULTS / f"{p.stem}.json").exists()]
    if records:
        (ROOT / "images").mkdir(exist_ok=True)
        journey_plot(records).savefig(ROOT / "images" / "journey.png", dpi=110)
    return any(changed)


def journey_plot(result_files: list[str | Path]):
    """Accuracy and parameters, step by step, read from the saved histories."""
    steps = [(Path(f).stem, History.load(f)) for f in sorted(result_files)]
    labels = [name.split("_")[0] for name, _ in steps]
    x = range(len(steps))
    fig, (ax_acc, ax_params) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[3, 2])
    ax_acc.plot(x, [h.best_test_acc for _, h in steps], "o-", label="best epoch (recorded seed)")
    ax_acc.plot(x, [h.worst_of_last3 for _, h in steps], "s-", label="worst of the last 3 epochs (recorded seed)")
    # Where a step ran several seeds: the range of their worst-of-last-3 accuracies, and its mean.
    spread = [(i, json.loads(seeds.read_text())) for i, (name, _) in enumerate(steps)
              if (seeds := Path(result_files[0]).parent / f"{name}_seeds.json").exists()]
    if spread:
        values = [[row["last3_min"] for row in s["rows"]] for _, s in spread]
        means = [sum(v) / len(v) for v in values]
        ax_acc.errorbar([i for i, _ in spread], means, fmt="D", color="black", capsize=4,
                        yerr=[[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]],
                        label="worst of the last 3 over seeds: mean and range")
    ax_acc.axhline(TARGET, color="gray", linestyle="--", linewidth=1, label=f"{TARGET} %")
    ax_acc.set(ylabel="test accuracy (%)", title="the journey")
    ax_params.bar(x, [h.params for _, h in steps], color="tab:gray")
    ax_params.axhline(8000, color="crimson", linestyle=":", linewidth=1, label="8,000 parameters")
    ax_params.set(ylabel="parameters", xlabel="step", xticks=list(x), xticklabels=labels)
    for ax in (ax_acc, ax_params):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    update_readme()
    sys.exit(0)
