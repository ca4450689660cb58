"""Benchmark: the usual torchvision pipeline against ``helpers``, same model, same settings.

    python -m tools.bench                 # the final notebook's model and config
    python -m tools.bench --notebook 05   # another step's
    python -m tools.bench --repeats 5
    python -m tools.bench --accuracy      # full runs through the reference pipeline
    python -m tools.bench --profile       # where a training step's time goes

Each measurement trains one epoch and tests once, from the same freshly
initialised model, in a subprocess of its own (so its peak memory is its
own). The pipelines alternate (A B, B A, A B, ...) so that a noisy machine
slows both alike, and their medians are compared. The table is printed and
written to ``results/bench_<device>.json``.

- reference: ``torchvision.datasets.MNIST`` with ``RandomRotation`` +
  ``ToTensor`` + ``Normalize`` in a ``DataLoader`` (the fastest
  ``num_workers`` found by a short probe);
- helpers: ``FastLoader`` and the training loop ``fit`` uses.

``--accuracy`` answers the other question, whether the fast loader teaches the
model the same thing: it trains the notebook's model for its full config
through the reference pipeline, once per seed, from the same initial weights
as the notebook's seed runs, and stores the result beside theirs in
``results/reference_pipeline_seeds.json``.

``--profile`` says where the time of the helpers pipeline goes: per phase of a
training step (batch, forward, backward, optimizer), timed directly, and per
kind of operation, from ``torch.profiler``; it also times the same step under
``torch.compile``. Written to ``results/profile_<device>.json``.
"""

from __future__ import annotations

import argparse
import copy as copy_module
import dataclasses
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
import torch.nn.functional as F

from helpers import data, records, train
from helpers._machinery.cpu import describe_device, keep_freed_memory
from helpers.records import write_json
from helpers.summary import count_parameters

from .project import RESULTS, ROOT, load_architecture, notebook_paths


def reference_loader(train: bool, batch_size: int, *, shuffle: bool = False, degrees: float = 0.0,
                     root: str | Path | None = None, num_workers: int = 0,
                     pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The pipeline every tutorial uses, to compare with: ``torchvision.datasets.MNIST`` + PIL
    ``transforms`` + ``DataLoader``, one image at a time."""
    from torchvision import datasets, transforms

    steps = [transforms.RandomRotation(degrees, fill=0)] if degrees else []
    steps += [transforms.ToTensor(), transforms.Normalize((data.MEAN,), (data.STD,))]
    dataset = datasets.MNIST(str(data.ensure_mnist(root)), train=train, download=False,
                             transform=transforms.Compose(steps))
    if data.smoke_mode():
        dataset = torch.utils.data.Subset(dataset, range(data.SMOKE_TRAIN if train else data.SMOKE_TEST))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, persistent_workers=num_workers > 0,
                                       pin_memory=pin_memory)


def _limit(loader, batches: int | None):
    return loader if batches is None else itertools.islice(loader, batches)


# The reference, the reference with helpers' malloc setting, helpers, helpers with the CUDA graph;
# and their labels in the README.
BENCH_ROWS = {"reference": "torchvision + DataLoader (num_workers={workers})",
              "reference_kept_memory": "the same + helpers' malloc setting",
              "helpers": "helpers (FastLoader + malloc setting)",
              "helpers_graph": "helpers + the step replayed as a CUDA graph"}
PIPELINES = tuple(BENCH_ROWS)
# Which rows each device measures: the malloc setting matters only on a CPU, the graph only on CUDA.
DEVICE_PIPELINES = {"cpu": ("reference", "reference_kept_memory", "helpers"),
                    "cuda": ("reference", "helpers", "helpers_graph")}
BENCH_LABELS = {"cpu": BENCH_ROWS, "cuda": {**BENCH_ROWS, "helpers": "helpers (FastLoader, eager)",
                                             "reference": "torchvision + DataLoader (num_workers={workers}, pinned memory)"}}


def _warm_up(model, batch_size: int, device: torch.device) -> None:
    """One forward/backward pass on a copy of the model, so that the memory torch's own
    code and kernels take is in the baseline, not charged to the pipeline measured after it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        copy = copy_module.deepcopy(model)
        copy(torch.zeros(batch_size, 1, 28, 28, device=device)).sum().backward()
    del copy


def _peak_rss() -> int:
    """This process's peak resident memory in bytes. Linux: VmHWM, which ``_reset_peak_rss`` can reset
    (``ru_maxrss`` cannot, and a subprocess starts with its parent's)."""
    try:
        with open("/proc/self/status") as f:
            return 1024 * int(next(line for line in f if line.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _reset_peak_rss() -> None:
    """Start the peak over from the current memory (Linux; elsewhere the peak keeps its past)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def one_run(pipeline: str, notebook: Path, workers: int = 0, batches: int | None = None) -> dict:
    """Train one epoch (or the first ``batches`` batches), then test once; time both."""
    device = train.choose_device(verbose=False)
    namespace = load_architecture(notebook)
    config = namespace["config"]
    if device.type == "cpu" and pipeline != "reference":
        keep_freed_memory()  # as fit() does
    train.set_seed(config.seed)
    model = namespace["Net"]().to(device)
    optimizer = train.make_optimizer(model, config)
    _warm_up(model, config.batch_size, device)
    _reset_peak_rss()
    baseline = _peak_rss()  # torch, its kernels, the model
    pinned = device.type == "cuda"  # the usual advice for a GPU: page-locked batches, copied asynchronously
    if pipeline.startswith("helpers"):
        train_loader, test_loader = train.make_loaders(config, device)
    else:
        train_loader = reference_loader(True, config.batch_size, shuffle=True, degrees=config.degrees,
                                             num_workers=workers, pin_memory=pinned)
        test_loader = reference_loader(False, train.EVAL_BATCH, num_workers=workers, pin_memory=pinned)
    capture_seconds = 0.0
    if pipeline == "helpers_graph":
        from helpers._machinery.cuda_graph import GraphedTraining

        start = time.perf_counter()
        graphed = GraphedTraining(model, config, len(train_loader), loader=train_loader,  # warm-up and recording
                                  plan=train.planned_schedule(config, len(train_loader)))
        torch.cuda.synchronize()
        capture_seconds = time.perf_counter() - start
    # the lr schedule steps per batch as in fit (the graph row runs it inside the graph)
    schedule = train.LrSchedule(optimizer, config, len(train_loader))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if pipeline == "helpers_graph":
        train_loss, _ = graphed.train_one_epoch(_limit(train_loader, batches))
    else:
        # the notebook's whole step, as fit runs it: clipping and the weight average cost time too
        averaged = train.average_of(model, config.ema_decay) if config.ema_decay else None
        train_loss, _ = train.train_one_epoch(model, _limit(train_loader, batches), optimizer, schedule,
                                              progress=False, label_smoothing=config.label_smoothing,
                                              clip_grad_norm=config.clip_grad_norm, averaged=averaged)
    train_seconds = time.perf_counter() - start  # .item() at the end of the epoch waited for the GPU
    start = time.perf_counter()
    _, correct, seen = train.evaluate(model, test_loader)
    test_seconds = time.perf_counter() - start
    trained = min(len(train_loader) if batches is None else batches, len(train_loader)) * config.batch_size
    # Peak memory the pipeline and training added: GPU memory on a GPU, else the process's peak RSS
    # above the baseline (DataLoader workers not included).
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else _peak_rss() - baseline)
    return {"pipeline": pipeline, "workers": workers, "train_seconds": train_seconds, "capture_seconds": capture_seconds,
            "train_images": min(trained, 60_000 if not data.smoke_mode() else data.SMOKE_TRAIN),
            "test_seconds": test_seconds, "test_images": seen, "test_accuracy": 100 * correct / seen,
            "train_loss": train_loss, "peak_bytes": peak}


def _subprocess(pipeline: str, notebook: Path, workers: int = 0, batches: int | None = None) -> dict:
    command = [sys.executable, "-m", "tools.bench", "--one", pipeline, "--notebook", notebook.name[:2],
               "--workers", str(workers)] + (["--batches", str(batches)] if batches else [])
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_workers(notebook: Path, batches: int = 60) -> tuple[int, dict]:
    """Try num_workers 0, 1, ..., cores on a few batches; keep the fastest."""
    cores = os.cpu_count() or 1
    candidates = sorted({0, 1, 2, cores} | ({4, 8} & set(range(cores))))
    seconds = {w: _subprocess("reference", notebook, w, batches)["train_seconds"] for w in candidates}
    return min(seconds, key=seconds.get), seconds


# Which kind of work each aten operation is, for the profile's breakdown (first match wins).
OP_KINDS = [("convolution, backward", ("convolution_backward",)),
            ("convolution, forward", ("convolution",)),
            ("BatchNorm", ("batch_norm",)),
            ("max-pool", ("max_pool",)),
            ("making the batch", ("grid_sampler", "affine_grid", "randperm", "index", "uniform", "linspace")),
            ("ReLU, dropout, loss and other element-wise", ("threshold", "clamp", "relu", "mul", "add", "div",
                                                             "sub", "fill_", "zero_", "bernoulli", "where", "softmax",
                                                             "nll_loss", "sum", "mean", "copy_", "sqrt", "lerp",
                                                             "addcmul", "addcdiv", "max", "argmax", "eq", "neg"))]


def _forever(loader):
    while True:
        yield from loader


def _fresh_step(make_model, config, device: torch.device, steps_per_epoch: int) -> tuple:
    """(model, optimizer, lr schedule, update), freshly seeded, as ``fit`` makes them. ``update`` is what
    follows backward in ``train_one_epoch``: clipping if the recipe clips, the optimizer step, the weight
    average if it keeps one, the lr schedule."""
    train.set_seed(config.seed)
    model = make_model().to(device)
    optimizer = train.make_optimizer(model, config)
    schedule = train.LrSchedule(optimizer, config, steps_per_epoch)
    averaged = train.average_of(model, config.ema_decay) if config.ema_decay else None

    def update():
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(model)
        schedule.after_batch()

    return model, optimizer, schedule, update


UPDATE_PHASE = "optimizer, lr schedule, clipping, average"  # the last two where the recipe has them


def _time_phases(step: tuple, batches, steps: int) -> dict[str, float]:
    """Milliseconds per step of each phase, timed one after the other (a CPU runs them in order)."""
    model, optimizer, _, update = step
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)
    totals = dict.fromkeys(["making the batch", "forward + loss", "backward", UPDATE_PHASE], 0.0)
    model.train()
    for _ in range(steps):
        marks = [time.perf_counter()]
        X, y = next(batches)
        sync(); marks.append(time.perf_counter())
        loss = F.cross_entropy(model(X), y)
        sync(); marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync(); marks.append(time.perf_counter())
        update()
        sync(); marks.append(time.perf_counter())
        for name, start, end in zip(totals, marks, marks[1:]):
            totals[name] += end - start
    return {name: 1000 * seconds / steps for name, seconds in totals.items()}


def profile(notebook: Path, steps: int = 100) -> dict:
    """Where a training step of the helpers pipeline spends its time (``--profile``)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    namespace = load_architecture(notebook)
    config = namespace["config"]
    device = train.choose_device()
    if device.type == "cpu":
        keep_freed_memory()
    train_loader, _ = train.make_loaders(config, device)
    batches = _forever(train_loader)  # each batch made when the step asks for it, as in fit
    step = _fresh_step(namespace["Net"], config, device, len(train_loader))
    _time_phases(step, batches, 10)  # warm-up
    phases = _time_phases(step, batches, steps)
    step_ms = sum(phases.values())
    print(f"One training step, {notebook.name}'s model, batch {config.batch_size}, {describe_device(device)}:")
    for name, ms in phases.items():
        print(f"  {name:26s}{ms:7.2f} ms  {100 * ms / step_ms:5.1f} %")
    print(f"  {'total':26s}{step_ms:7.2f} ms  = {step_ms * len(train_loader) / 1000:.1f} s per epoch of "
          f"{len(train_loader)} steps")

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        _time_phases(step, batches, 30)
    self_time = {}
    for event in prof.key_averages():
        us = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        if us > 0 and event.key.startswith("aten::"):
            kind = next((k for k, needles in OP_KINDS if any(n in event.key for n in needles)), "other")
            self_time[kind] = self_time.get(kind, 0.0) + us
    total = sum(self_time.values())
    kinds = {kind: 100 * us / total for kind, us in sorted(self_time.items(), key=lambda kv: -kv[1])}
    print("Share of the operations' own time (torch.profiler, 30 steps):")
    for kind, share in kinds.items():
        print(f"  {kind:44s}{share:5.1f} %")

    compiled = _time_compiled(namespace["Net"], config, device, batches, steps)
    graph = _graph_profile(namespace["Net"], config, device, train_loader) if device.type == "cuda" else None
    record = {"notebook": notebook.name, "params": count_parameters(namespace["Net"]()),
              "device": describe_device(device), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "batch_size": config.batch_size, "steps": steps,
              "steps_per_epoch": len(train_loader), "smoke": data.smoke_mode(), "phases_ms": phases,
              "step_ms": step_ms, "op_kinds_percent": kinds, "compiled": compiled,
              **({"cuda_graph": graph} if graph else {})}
    if not data.smoke_mode():
        out = write_json(RESULTS / f"profile_{device.type}.json", record)
        print(f"written to {out}")
    return record


def _time_compiled(make_model, config, device, batches, steps: int) -> dict:
    """The same step, eager and under ``torch.compile`` (which ``fit`` does not use: see the README),
    alternating on the same 20 full-size batches (another batch size would compile again)."""
    fixed = [b for b in (next(batches) for _ in range(25)) if len(b[1]) == config.batch_size][:20]
    eager = _fresh_step(make_model, config, device, 10 * steps)
    model, optimizer, schedule, update = _fresh_step(make_model, config, device, 10 * steps)
    runs = {"eager": eager, "compiled": (torch.compile(model), optimizer, schedule, update)}
    try:
        start = time.perf_counter()
        _time_phases(runs["compiled"], iter(fixed[:3]), 3)  # compiles here
        compile_seconds = time.perf_counter() - start
    except Exception as exc:  # no C++ compiler, an unsupported platform, ...
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
        print(f"torch.compile: not available here ({reason})")
        return {"error": reason}
    _time_phases(runs["eager"], iter(fixed[:3]), 3)
    ms: dict[str, list[float]] = {"eager": [], "compiled": []}
    for round_ in range(3):
        for kind in ("eager", "compiled") if round_ % 2 == 0 else ("compiled", "eager"):
            ms[kind].append(sum(_time_phases(runs[kind], itertools.cycle(fixed), steps // 3).values()))
    result = {kind: statistics.median(values) for kind, values in ms.items()}
    print(f"Same 20 batches, alternating: eager {result['eager']:.2f} ms per step, torch.compile "
          f"{result['compiled']:.2f} ms ({result['eager'] / result['compiled']:.2f}x) after {compile_seconds:.0f} s "
          f"of compiling")
    return {"eager_step_ms": result["eager"], "compiled_step_ms": result["compiled"],
            "compile_seconds": compile_seconds}


# The host calls that start work on the GPU: a kernel, a copy, a fill, or a whole graph.
LAUNCH_CALLS = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaMemcpyAsync",
                "cudaMemsetAsync", "cudaGraphLaunch"}


def _launches(run, steps: int) -> dict:
    """Per step: launches the host made and GPU activities (kernels, copies) seen while ``run()`` took
    ``steps`` steps, from torch.profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    events = prof.events()
    launches = sum(1 for e in events if e.name in LAUNCH_CALLS)
    on_gpu = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return {"launches_per_step": launches / steps, "gpu_activities_per_step": on_gpu / steps}


def _graph_profile(make_model, config, device: torch.device, loader) -> dict:
    """On CUDA: microseconds and launches per training step over whole epochs, eager against the CUDA
    graph (which makes the batch inside), and making the batch alone. Medians of 3 alternating epochs."""
    from helpers._machinery.cuda_graph import GraphedTraining

    steps = len(loader)
    model, optimizer, schedule, _ = _fresh_step(make_model, config, device, steps)
    graphed = GraphedTraining(_fresh_step(make_model, config, device, steps)[0], config, steps, loader=loader,
                              plan=train.planned_schedule(config, steps))
    runs = {"making the batch (eager)": lambda: sum(len(y) for _, y in loader),
            "eager step": lambda: train.train_one_epoch(model, loader, optimizer, schedule, progress=False),
            "graph step": lambda: graphed.train_one_epoch(loader)}
    for run in runs.values():
        run()  # warm-up
    micros: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(3):
        for name in runs if round_ % 2 == 0 else list(runs)[::-1]:
            torch.cuda.synchronize()
            start = time.perf_counter()
            runs[name]()
            torch.cuda.synchronize()
            micros[name].append(1e6 * (time.perf_counter() - start) / steps)
    # Launches counted over a whole epoch, but the eager one over 50 steps (the profiler slows it most).
    counted = {**runs, "eager step": lambda: train.train_one_epoch(model, itertools.islice(loader, 50), optimizer,
                                                                     schedule, progress=False)}
    result = {name: {"us_per_step": statistics.median(values),
                     **_launches(counted[name], 50 if name == "eager step" else steps)}
              for name, values in micros.items()}
    print(f"On {describe_device(device)}, per training step (batch {config.batch_size}, {steps} steps an "
          f"epoch, median of 3 epochs):")
    for name, row in result.items():
        print(f"  {name:26s}{row['us_per_step']:8.1f} us  {row['launches_per_step']:6.1f} launches  "
              f"{row['gpu_activities_per_step']:6.1f} GPU kernels and copies")
    return result


def accuracy(notebook: Path, seeds: list[int], workers: int = 0) -> dict:
    """Full training runs through the reference pipeline, compared with the notebook's seed runs."""
    namespace = load_architecture(notebook)
    config = namespace["config"]
    device = train.choose_device()
    loaders = (reference_loader(True, config.batch_size, shuffle=True, degrees=config.degrees,
                                     num_workers=workers),
               reference_loader(False, train.EVAL_BATCH, num_workers=workers))
    histories = []
    for seed in seeds:
        print(f"--- reference pipeline, seed {seed} ---", flush=True)
        train.set_seed(seed)  # as in the notebook: same seed, same initial weights
        histories.append(train.fit(namespace["Net"](), dataclasses.replace(config, seed=seed), device=device,
                                   progress=False, loaders=loaders))
    reference = records.seed_summary(histories)
    print("reference pipeline:\n" + records.format_seed_table(reference))
    record = {"notebook": notebook.name, "params": reference["params"], "device": describe_device(device),
              "torch": torch.__version__, "smoke": data.smoke_mode(), "reference_workers": workers, "reference": reference,
              "reference_histories": [h.fields() for h in histories]}
    helpers_record = RESULTS / f"{notebook.stem}_seeds.json"
    if helpers_record.exists():
        record["helpers"] = json.loads(helpers_record.read_text())
        print(f"helpers (FastLoader), from {helpers_record.name}:\n" + records.format_seed_table(record["helpers"]))
    if not data.smoke_mode():
        out = write_json(RESULTS / "reference_pipeline_seeds.json", record)
        print(f"written to {out}")
    return record


def seeds_here(notebook: Path, seeds: list[int]) -> dict:
    """The notebook's model and config trained with ``fit`` on this machine's device, once per seed,
    recorded as results/<notebook>_seeds_<device>.json beside the notebook's own seed record."""
    namespace = load_architecture(notebook)
    device = train.choose_device()
    histories = train.fit_seeds(namespace["Net"], namespace["config"], seeds, device=device)
    summary = records.seed_summary(histories)
    print(f"{notebook.stem} on {histories[0].device}:\n" + records.format_seed_table(summary))
    recorded = RESULTS / f"{notebook.stem}_seeds.json"
    if recorded.exists():
        print(f"recorded ({recorded.name}):\n" + records.format_seed_table(json.loads(recorded.read_text())))
    record = summary | {"notebook": notebook.name, "device": histories[0].device, "torch": torch.__version__,
                        "histories": [h.fields() for h in histories]}
    if not data.smoke_mode():
        print(f"written to {write_json(RESULTS / f'{notebook.stem}_seeds_{device.type}.json', record)}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default=None, help="two-digit step whose model/config to use (default: the last)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per pipeline (median is reported)")
    parser.add_argument("--accuracy", action="store_true",
                        help="instead of timing: full training runs through the reference pipeline")
    parser.add_argument("--profile", action="store_true", help="instead of the A/B timing: where a step's time goes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                        help="seeds for --accuracy and --seeds-here")
    parser.add_argument("--seeds-here", action="store_true",
                        help="instead of timing: the notebook's config trained with fit on this device, once per seed")
    parser.add_argument("--reference-workers", type=int, default=None,
                        help="num_workers for the reference DataLoader (default: probe 0, 1, 2, 4, 8 and all cores)")
    parser.add_argument("--one", choices=list(PIPELINES), help=argparse.SUPPRESS)
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
    if args.accuracy:
        accuracy(notebook, args.seeds, args.workers)
        return 0
    if args.profile:
        profile(notebook)
        return 0
    if args.seeds_here:
        seeds_here(notebook, args.seeds)
        return 0

    device = train.choose_device()
    namespace = load_architecture(notebook)
    config, params = namespace["config"], count_parameters(namespace["Net"]())
    print(f"Benchmark on {notebook.name} ({params:,} parameters): {config}")
    if args.reference_workers is None:
        workers, probe = best_workers(notebook)
        print(f"reference DataLoader: num_workers={workers} (probe, s for 60 batches: "
              f"{ {w: round(s, 2) for w, s in probe.items()} })")
    else:
        workers, probe = args.reference_workers, {}
        print(f"reference DataLoader: num_workers={workers} (given, no probe)")
    # The malloc setting only matters on a CPU (its row separates its share from the loader's), the graph on CUDA.
    pipelines = list(DEVICE_PIPELINES.get(device.type, ("reference", "helpers")))
    runs: dict[str, list[dict]] = {pipeline: [] for pipeline in pipelines}
    for repeat in range(args.repeats):
        for pipeline in pipelines if repeat % 2 == 0 else pipelines[::-1]:
            run = _subprocess(pipeline, notebook, 0 if pipeline.startswith("helpers") else workers)
            runs[pipeline].append(run)
            print(f"  {repeat + 1}/{args.repeats} {pipeline:22s} train {run['train_seconds']:6.2f} s  "
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
    if "helpers_graph" in table:
        speedup["train_graph"] = table["reference"]["train_seconds"] / table["helpers_graph"]["train_seconds"]
        speedup["train_graph_vs_eager"] = table["helpers"]["train_seconds"] / table["helpers_graph"]["train_seconds"]
    if "reference_kept_memory" in table:  # the malloc setting's share of the training speed-up
        speedup["train_malloc_only"] = table["reference"]["train_seconds"] / table["reference_kept_memory"]["train_seconds"]
    record = {
        "notebook": notebook.name, "params": params, "config": config.__dict__,
        "device": describe_device(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "repeats": args.repeats, "reference_workers": workers, "workers_probe": probe,
        "smoke": data.smoke_mode(),
        "median": table, "speedup": speedup, "runs": runs,
    }
    print(f"\n{'pipeline':22s}{'s/epoch':>9s}{'img/s':>9s}{'test s':>8s}{'test img/s':>11s}{'peak MiB':>10s}")
    for pipeline, row in table.items():
        print(f"{pipeline:22s}{row['train_seconds']:9.2f}{row['train_images_per_s']:9.0f}{row['test_seconds']:8.2f}"
              f"{row['test_images_per_s']:11.0f}{row['peak_mib']:10.0f}")
    if "train_graph" in speedup:
        print(f"with the CUDA graph: training {speedup['train_graph']:.1f}x the reference, "
              f"{speedup['train_graph_vs_eager']:.1f}x helpers eager")
    print(f"speed-up: training {speedup['train']:.2f}x, test {speedup['test']:.2f}x "
          f"({record['device']}, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if not data.smoke_mode():
        out = write_json(RESULTS / f"bench_{device.type}.json", record)
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
