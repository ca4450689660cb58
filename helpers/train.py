"""Training: seeding, the device, the config, the train/test loop and its history.

Introduced in step 01 and unchanged after it: from one notebook to the next
only the model and the ``Config`` change.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data
from .files import project_root, write_json

TARGET = 99.4  # the accuracy this series aims at, in percent
EVAL_BATCH = 1_000  # batch size for every evaluation pass: no gradients, so it can be large
CLEAN_TRAIN_IMAGES = 10_000  # the fixed training subset measured each epoch without dropout or augmentation


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that weight init and dropout repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(verbose: bool = True) -> torch.device:
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        device, name = torch.device("cuda"), torch.cuda.get_device_name()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, name = torch.device("mps"), "Apple GPU"
    else:
        device, name = torch.device("cpu"), _threads()
    if verbose:
        print(f"Device: {device} ({name}), torch {torch.__version__}")
    return device


def describe_device(device: torch.device) -> str:
    """The device in words, for logs and records: 'cuda (NVIDIA H100 ...)', 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({_threads()})"
    return str(device)


def _threads() -> str:
    n = torch.get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''}"


@dataclass
class Config:
    """Everything about a run except the model. Printed at the top of every training log."""

    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"        # "sgd", "adam" or "adamw"
    lr: float = 0.01              # the starting lr; with "onecycle" see max_lr
    momentum: float = 0.9         # SGD only
    weight_decay: float = 0.0
    scheduler: str = "none"       # "none", "step" (StepLR) or "onecycle" (OneCycleLR)
    step_size: int = 6            # StepLR: multiply the lr by gamma every step_size epochs
    gamma: float = 0.1
    max_lr: float = 0.1           # OneCycleLR: the peak lr ...
    pct_start: float = 0.3        # ... reached after this fraction of the steps,
    div_factor: float = 25.0      # ... starting from max_lr / div_factor
    final_div_factor: float = 1e4  # ... and ending at that start / final_div_factor
    degrees: float = 0.0          # augmentation: random rotation in [-degrees, degrees]
    translate: float = 0.0        # random shift, a fraction of the image size
    scale: float = 0.0            # random zoom in [1 - scale, 1 + scale]
    label_smoothing: float = 0.0  # the target puts this much of its weight evenly on all 10 classes (step 13)
    clip_grad_norm: float = 0.0   # if > 0, shrink the gradient whenever its norm is above this (step 13)
    ema_decay: float = 0.0        # if > 0, test an exponential moving average of the weights (step 13)
    seed: int = 1

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ValueError(f"Config.{name}={getattr(self, name)!r} is invalid: allowed {allowed}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def number(name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            check(name, ok, f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")

        check("epochs", is_int(self.epochs) and 1 <= self.epochs <= 100, "an integer in [1, 100]")
        check("batch_size", is_int(self.batch_size) and 1 <= self.batch_size <= 60_000, "an integer in [1, 60000]")
        check("optimizer", self.optimizer in ("sgd", "adam", "adamw"), "'sgd', 'adam' or 'adamw'")
        number("lr", 0, 10, low_open=True)
        number("momentum", 0, 1, high_open=True)
        number("weight_decay", 0, 1)
        check("scheduler", self.scheduler in ("none", "step", "onecycle"), "'none', 'step' or 'onecycle'")
        check("step_size", is_int(self.step_size) and self.step_size >= 1, "an integer >= 1")
        number("gamma", 0, 1, low_open=True)
        number("max_lr", 0, 10, low_open=True)
        number("pct_start", 0, 1, low_open=True, high_open=True)
        number("div_factor", 1, 1e6)
        number("final_div_factor", 1, 1e6)
        number("degrees", 0, 180)
        number("translate", 0, 0.5)
        number("scale", 0, 0.5, high_open=True)
        number("label_smoothing", 0, 1, high_open=True)
        number("clip_grad_norm", 0, 1e6)
        check("ema_decay", isinstance(self.ema_decay, (int, float)) and not isinstance(self.ema_decay, bool)
              and (self.ema_decay == 0 or 0.5 <= self.ema_decay < 1),
              "0 (no averaging) or a decay in [0.5, 1), e.g. 0.999: each step keeps that fraction of the average")
        check("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0")

    def applicable(self) -> dict:
        """The fields that matter for this run: no momentum under Adam, no lr under one-cycle (max_lr rules), ..."""
        skip = set()
        if self.optimizer != "sgd":
            skip.add("momentum")
        if self.weight_decay == 0:
            skip.add("weight_decay")
        if self.scheduler == "onecycle":
            skip.add("lr")  # OneCycleLR sets the lr itself, from max_lr
        if self.scheduler != "step":
            skip |= {"step_size", "gamma"}
        if self.scheduler != "onecycle":
            skip |= {"max_lr", "pct_start", "div_factor", "final_div_factor"}
        skip |= {name for name in ("div_factor", "final_div_factor")
                 if getattr(self, name) == getattr(Config, name)}  # OneCycleLR's own defaults
        skip |= {name for name in ("degrees", "translate", "scale", "label_smoothing", "clip_grad_norm", "ema_decay")
                 if getattr(self, name) == 0}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def __str__(self) -> str:
        return "Config(" + ", ".join(f"{name}={value!r}" for name, value in self.applicable().items()) + ")"


@dataclass
class History:
    """What a run produced, epoch by epoch, plus what is needed to tell runs apart."""

    config: dict
    params: int
    device: str
    smoke: bool = False
    torch_version: str = torch.__version__
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)       # running, while training: dropout and augmentation on
    clean_train_acc: list[float] = field(default_factory=list)  # first 10,000 training images, eval mode, no augmentation
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    test_correct: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    raw_test_acc: list[float] = field(default_factory=list)     # with weight averaging: the raw weights' test accuracy

    @property
    def epochs(self) -> int:
        return len(self.test_acc)

    @property
    def best_test_acc(self) -> float:
        return max(self.test_acc)

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the best test accuracy (the first, if tied)."""
        return self.test_acc.index(self.best_test_acc) + 1

    @property
    def last_test_acc(self) -> float:
        return self.test_acc[-1]

    @property
    def last3_min(self) -> float:
        """The worst of the last 3 epochs: a claim that holds there is not one lucky epoch."""
        return min(self.test_acc[-3:])

    @property
    def epochs_at_target(self) -> list[int]:
        """1-based epochs whose test accuracy is at least 99.4 %."""
        return [i + 1 for i, acc in enumerate(self.test_acc) if acc >= TARGET]

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.seconds) / len(self.seconds)

    def summary(self) -> dict:
        return {
            "params": self.params, "epochs": self.epochs, "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch, "last_test_acc": self.last_test_acc, "last3_min": self.last3_min,
            "last_train_acc": self.train_acc[-1],
            **({"last_clean_train_acc": self.clean_train_acc[-1]} if self.clean_train_acc else {}),
            "epochs_at_target": self.epochs_at_target,
            "seconds_per_epoch": round(self.seconds_per_epoch, 2), "device": self.device,
        }

    def save(self, path: str | Path) -> Path:
        """Write the history (and its summary, for people reading the file) as JSON."""
        return write_json(path, self.record())

    def record(self) -> dict:
        """The history as stored: its fields and its summary."""
        return self.fields() | {"summary": self.summary()}

    def fields(self) -> dict:
        """The fields as a dict; ``raw_test_acc`` only where there was weight averaging."""
        fields = dataclasses.asdict(self)
        if not fields["raw_test_acc"]:
            del fields["raw_test_acc"]
        return fields

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls.load_record(json.loads(Path(path).read_text()))

    @classmethod
    def load_record(cls, record: dict) -> "History":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in fields})  # other keys: the summary, added context


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: Config, steps_per_epoch: int):
    """The lr schedule (step 06). Returns (scheduler or None, whether it steps every batch)."""
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), False
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.max_lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
            pct_start=config.pct_start, div_factor=config.div_factor, final_div_factor=config.final_div_factor), True
    return None, False


def make_loaders(config: Config, device: torch.device, root=None) -> tuple[data.FastLoader, data.FastLoader]:
    """The shuffled, augmented training loader and a plain test loader, both on ``device``."""
    train = data.FastLoader(*data.load_mnist(True, root), config.batch_size, shuffle=True, degrees=config.degrees,
                            translate=config.translate, scale=config.scale, seed=config.seed, device=device)
    test = data.FastLoader(*data.load_mnist(False, root), EVAL_BATCH, device=device)
    return train, test


def clean_train_loader(device: torch.device, root=None) -> data.FastLoader:
    """The first 10,000 training images, unshuffled and unaugmented: how well the model fits what it learns from."""
    images, labels = data.load_mnist(True, root)
    return data.FastLoader(images[:CLEAN_TRAIN_IMAGES], labels[:CLEAN_TRAIN_IMAGES], EVAL_BATCH, device=device)


def train_one_epoch(model, loader, optimizer, scheduler=None, progress: bool = True,
                    desc: str = "train", *, label_smoothing: float = 0.0, clip_grad_norm: float = 0.0,
                    averaged=None) -> tuple[float, float]:
    """One pass over the training data: forward, loss, backward, update. Returns (mean loss, accuracy %).

    Works with any loader of (X, y) batches, a ``FastLoader`` or a ``DataLoader``.
    Step 13's recipe adds three things that cost no parameters: ``label_smoothing``
    (softer targets), ``clip_grad_norm`` (no step larger than that) and ``averaged``
    (a ``torch.optim.swa_utils.AveragedModel`` updated after every step).
    Loss and correct counts are summed on the device and read once at the end:
    reading a GPU number after every batch would make the CPU wait each time.
    """
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for X, y in tqdm(loader, desc=desc, leave=False, mininterval=1.0, disable=not progress):
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)  # no-op for FastLoader
        output = model(X)                        # forward: one score per digit
        loss = F.cross_entropy(output, y, label_smoothing=label_smoothing)  # how wrong, averaged over the batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()                          # gradients of the loss for every weight
        if clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()                         # a small step against them
        if averaged is not None:
            averaged.update_parameters(model)    # the running average of the weights moves a little
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (output.argmax(dim=1) == y).sum()
        seen += len(y)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen


@torch.inference_mode()
def evaluate(model, loader) -> tuple[float, int, int]:
    """(mean loss, correct predictions, images) over ``loader``; no gradients, no dropout."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for X, y in loader:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        output = model(X)
        loss_sum += F.cross_entropy(output, y, reduction="sum")
        correct += (output.argmax(dim=1) == y).sum()
        seen += len(y)
    return loss_sum.item() / seen, int(correct.item()), seen


@torch.inference_mode()
def predict(model, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) for a whole loader, on the CPU, for the error plots."""
    model.eval()
    predictions, labels = [], []
    device = next(model.parameters()).device
    for X, y in loader:
        predictions.append(model(X.to(device)).argmax(dim=1).cpu())
        labels.append(y.cpu())
    return torch.cat(predictions), torch.cat(labels)


def fit(model: torch.nn.Module, config: Config, *, device: torch.device | None = None, root=None,
        progress: bool = True, loaders: tuple | None = None, quiet: bool = False,
        cuda_graph: bool = True) -> History:
    """Train ``model`` for ``config.epochs`` epochs, testing on the 10k test set after each.

    The schedule follows the epoch count only, never the test numbers: the test
    set is looked at, not learned from. In smoke mode (``MNIST8K_SMOKE=1``, set
    by the test command) it trains 1 epoch on 2,000 images and tests on 1,000.
    ``loaders`` = (train, test) replaces the fast loaders, e.g. with the
    torchvision pipeline, to check that both teach the model the same.
    ``quiet`` prints nothing (``fit_seeds`` prints one line per seed instead).
    On an NVIDIA GPU each step is replayed from a CUDA graph (``helpers.cuda_graph``:
    the same step, fewer launches); ``cuda_graph=False`` trains eagerly there too.
    """
    from .cpu_tuning import keep_freed_memory
    from .summary import count_parameters

    say = (lambda *args: None) if quiet else print
    if data.smoke_mode():
        config = dataclasses.replace(config, epochs=1)
        say(f"SMOKE MODE ({data.SMOKE_ENV}=1): 1 epoch, {data.SMOKE_TRAIN} train / {data.SMOKE_TEST} test images")
    device = device or choose_device(verbose=False)
    tuned = device.type == "cpu" and keep_freed_memory()  # see helpers/cpu_tuning.py: same numbers, faster steps
    say(f"Device: {describe_device(device)}, torch {torch.__version__}"
        + ("; malloc keeps freed memory (helpers.cpu_tuning)" if tuned else ""))
    say(config)
    torch.manual_seed(config.seed)  # dropout masks repeat too
    model.to(device)
    train_loader, test_loader = loaders or make_loaders(config, device, root)
    clean_loader = clean_train_loader(device, root)
    graphed = _graphed_training(model, config, device, train_loader, say) if cuda_graph else None
    if graphed is None:
        optimizer = make_optimizer(model, config)
        scheduler, per_batch = make_scheduler(optimizer, config, len(train_loader))
    averaged = average_of(model, config.ema_decay) if config.ema_decay else None
    tested = averaged.module if averaged is not None else model  # with averaging, the average is what we test
    history = History(config=dataclasses.asdict(config), params=count_parameters(model),
                      device=describe_device(device) + (", CUDA graph" if graphed else ""), smoke=data.smoke_mode())
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        if graphed is not None:  # the same step, replayed (helpers/cuda_graph.py)
            lr = graphed.lr_of_next_step((epoch - 1) * len(train_loader))
            train_loss, train_acc = graphed.train_one_epoch(train_loader)
        else:
            lr = optimizer.param_groups[0]["lr"]
            train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, scheduler if per_batch else None,
                                                    progress, desc=f"epoch {epoch}",
                                                    label_smoothing=config.label_smoothing,
                                                    clip_grad_norm=config.clip_grad_norm, averaged=averaged)
            if scheduler is not None and not per_batch:
                scheduler.step()
        test_loss, correct, total = evaluate(tested, test_loader)
        seconds = time.perf_counter() - start  # training and the test pass, as before the clean-train pass existed
        test_acc = 100.0 * correct / total
        if averaged is not None:  # the raw weights too, to see what averaging bought
            history.raw_test_acc.append(100.0 * evaluate(model, test_loader)[1] / total)
        _, clean_correct, clean_total = evaluate(tested, clean_loader)
        clean_train_acc = 100.0 * clean_correct / clean_total
        for name, value in [("lr", lr), ("train_loss", train_loss), ("train_acc", train_acc),
                            ("clean_train_acc", clean_train_acc),
                            ("test_loss", test_loss), ("test_acc", test_acc), ("test_correct", correct),
                            ("seconds", seconds)]:
            getattr(history, name).append(value)
        say(f"epoch {epoch:2d}/{config.epochs}  lr {lr:.4f}  train loss {train_loss:.4f} acc {train_acc:6.2f}% (clean {clean_train_acc:6.2f}%)  "
              f"test loss {test_loss:.4f} acc {test_acc:6.2f}%"
              + (f" (raw weights {history.raw_test_acc[-1]:6.2f}%)" if averaged is not None else "") + f"  {seconds:5.1f} s")
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())  # from here on the model is the average
    return history


def average_of(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics (step 13).

    After every step: average = decay * average + (1 - decay) * weights. With
    decay 0.999 the average remembers roughly the last 1,000 steps (about two
    epochs at batch 128), so the epoch-to-epoch jitter of the last steps of a
    run is smoothed out without a single extra parameter.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _graphed_training(model, config: Config, device: torch.device, train_loader, say):
    """A ``GraphedTraining`` where a CUDA graph can run (a GPU, Adam); else None, and why, in a CUDA log."""
    from . import cuda_graph

    reason = cuda_graph.unsupported_reason(device, config)
    if reason is None:
        return cuda_graph.GraphedTraining(model, config, len(train_loader), loader=train_loader)
    if device.type == "cuda":
        say(f"CUDA graph: not used ({reason})")
    return None


def output_base(smoke: bool) -> Path:
    """Where runs are recorded: the project root (see ``helpers.files.project_root``), or a
    temporary folder for smoke runs, so that the test command never overwrites a record."""
    return Path(tempfile.gettempdir()) / "mnist8k-smoke" if smoke else project_root()


def save_history(history: History, name: str) -> Path:
    """Store a history read back from elsewhere (step 12: a search record) in results/NAME.json. In smoke
    mode it goes to a temporary folder even though the run it describes was real, so a smoke pass of the
    notebook never rewrites the project's record."""
    return history.save(output_base(history.smoke or data.smoke_mode()) / "results" / f"{name}.json")


def save_run(model: torch.nn.Module, history: History, name: str) -> None:
    """Store a step's history in results/NAME.json and its final weights in models/NAME.pt."""
    base = output_base(history.smoke)
    history.save(base / "results" / f"{name}.json")
    weights = base / "models" / f"{name}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    where = "a temporary folder (smoke run)" if history.smoke else "the project"
    print(f"Saved results/{name}.json and models/{name}.pt in {where}")


def load_weights(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """Put the weights an earlier step stored with ``save_run`` into ``model`` (same architecture), on the CPU.

    Always the recorded weights in the project's models/, also in smoke mode:
    a later step compares itself with the step it builds on.
    """
    path = project_root() / "models" / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run that step first (make journey STEPS={name[:2]})")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def fit_seeds(make_model, config: Config, seeds: list[int], **fit_kwargs) -> list[History]:
    """Train the same architecture and config once per seed: how much of a result is luck?

    A seed sets the initial weights, the shuffle, the dropout masks and the
    augmentation. Each run is quiet; one line per seed says how it ended.
    """
    histories = []
    for seed in seeds:
        set_seed(seed)
        h = fit(make_model(), dataclasses.replace(config, seed=seed), **({"quiet": True, "progress": False} | fit_kwargs))
        histories.append(h)
        print(f"seed {seed}: best {h.best_test_acc:.2f} % (epoch {h.best_epoch}), last {h.last_test_acc:.2f} %, "
              f"worst of last 3 {h.last3_min:.2f} %, {len(h.epochs_at_target)} epochs at >= {TARGET} %  "
              f"({sum(h.seconds) / 60:.1f} min on {h.device})")
    return histories


def seed_summary(histories: list[History]) -> dict:
    """Per seed: best, last, worst of the last 3 epochs, epochs at >= 99.4 %; then mean and std of each."""
    rows = [{"seed": h.config["seed"], "best": h.best_test_acc, "last": h.last_test_acc, "last3_min": h.last3_min,
             "epochs_at_target": len(h.epochs_at_target)} for h in histories]
    stats = {}
    for key in ("best", "last", "last3_min", "epochs_at_target"):
        values = torch.tensor([float(r[key]) for r in rows], dtype=torch.float64)
        stats[key] = {"mean": values.mean().item(), "std": values.std().item() if len(rows) > 1 else 0.0,
                      "min": values.min().item()}
    return {"params": histories[0].params, "epochs": histories[0].epochs, "rows": rows, "stats": stats,
            "all_last3_at_target": all(r["last3_min"] >= TARGET for r in rows)}


def save_seeds(histories: list[History], name: str) -> dict:
    """Summarize a multi-seed run, print the table, store it and every seed's history in results/NAME.json
    (smoke runs: a temporary folder)."""
    summary = seed_summary(histories)
    print(format_seed_table(summary))
    record = summary | {"histories": [h.fields() for h in histories]}
    write_json(output_base(histories[0].smoke or data.smoke_mode()) / "results" / f"{name}.json", record)
    return summary


@torch.inference_mode()
def predict_test_set(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, predicted labels, true labels) for the whole test set, on the CPU, for the error plots."""
    images, labels = data.load_mnist(train=False)
    device = next(model.parameters()).device
    predicted, _ = predict(model, data.FastLoader(images, labels, EVAL_BATCH, device=device))
    return images, predicted, labels


def format_seed_table(summary: dict) -> str:
    lines = [f"{'seed':>5}{'best %':>9}{'last %':>9}{'min last 3 %':>14}{'epochs >= 99.4':>16}"]
    for r in summary["rows"]:
        lines.append(f"{r['seed']:>5}{r['best']:>9.2f}{r['last']:>9.2f}{r['last3_min']:>14.2f}{r['epochs_at_target']:>16}")
    s = summary["stats"]
    lines.append(f"{'mean':>5}{s['best']['mean']:>9.2f}{s['last']['mean']:>9.2f}{s['last3_min']['mean']:>14.2f}"
                 f"{s['epochs_at_target']['mean']:>16.1f}")
    lines.append(f"{'std':>5}{s['best']['std']:>9.2f}{s['last']['std']:>9.2f}{s['last3_min']['std']:>14.2f}"
                 f"{s['epochs_at_target']['std']:>16.1f}")
    return "\n".join(lines)
