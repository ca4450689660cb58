"""Training: seeding, the device, the config, the lr schedule, the train/test loop (step 01; from one
notebook to the next only the model and the ``Config`` change). What a run records: ``helpers.records``."""

from __future__ import annotations

import dataclasses
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data, records
from ._machinery.checks import check_config
from ._machinery.cpu import describe_device, keep_freed_memory
from ._machinery.cuda_graph import graphed_training, plan
from .records import TARGET, History
from .summary import count_parameters

EVAL_BATCH = 1_000  # batch size for every evaluation pass: no gradients, so it can be large
CLEAN_TRAIN_IMAGES = 10_000  # the fixed training subset measured each epoch without dropout or augmentation


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so that weight init and dropout repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(verbose: bool = True) -> torch.device:
    """The fastest device here: a CUDA GPU, else Apple's MPS, else the CPU."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    device = torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if verbose:
        print(f"Device: {describe_device(device)}, torch {torch.__version__}")
    return device


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
        check_config(self)  # a bad value gets a message naming the field and what is allowed

    def fields_that_matter(self) -> dict:
        """The fields that matter for this run: no momentum under Adam, no lr under one-cycle (max_lr rules), ..."""
        skip = {"momentum"} if self.optimizer != "sgd" else set()
        skip |= {"weight_decay"} if self.weight_decay == 0 else set()
        skip |= {"lr"} if self.scheduler == "onecycle" else set()  # OneCycleLR sets the lr itself, from max_lr
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
        return "Config(" + ", ".join(f"{name}={value!r}" for name, value in self.fields_that_matter().items()) + ")"


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class LrSchedule:
    """The lr over a run (step 06): torch's scheduler, and when it steps.

    One-cycle changes the lr after every batch, StepLR after every epoch; the
    loop calls ``after_batch`` and ``after_epoch`` and this object knows which
    of the two moves the lr.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: "Config", steps_per_epoch: int):
        self.optimizer = optimizer
        self.scheduler, self.per_batch = None, False
        if config.scheduler == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
        elif config.scheduler == "onecycle":
            self.scheduler, self.per_batch = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=config.max_lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                pct_start=config.pct_start, div_factor=config.div_factor,
                final_div_factor=config.final_div_factor), True

    @property
    def lr(self) -> float:
        """The lr the next step will use."""
        return self.optimizer.param_groups[0]["lr"]

    def after_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.scheduler is not None and not self.per_batch:
            self.scheduler.step()


def make_loaders(config: Config, device: torch.device, root=None) -> tuple[data.FastLoader, data.FastLoader]:
    """The shuffled, augmented training loader and a plain test loader, both on ``device``."""
    train = data.FastLoader(*data.load_mnist(True, root), config.batch_size, shuffle=True, degrees=config.degrees,
                            translate=config.translate, scale=config.scale, seed=config.seed, device=device)
    test = data.FastLoader(*data.load_mnist(False, root), EVAL_BATCH, device=device)
    return train, test


def train_one_epoch(model, loader, optimizer, schedule: LrSchedule | None = None, progress: bool = True,
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
        if schedule is not None:
            schedule.after_batch()               # one-cycle: the lr moves after every batch
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


def fit(model: torch.nn.Module, config: Config, *, device: torch.device | None = None, root=None,
        progress: bool = True, loaders: tuple | None = None, quiet: bool = False, cuda_graph: bool = True,
        measure: dict | None = None) -> History:
    """Train ``model`` for ``config.epochs`` epochs, testing on the 10k test set after each: the loop of
    step 01, plus bookkeeping. The test set is looked at, never learned from. ``loaders`` = (train, test) replaces the fast loaders; ``measure`` = {name: loader} records other
    sets' accuracy each epoch (``history.extra_acc``); ``quiet`` prints nothing. Smoke mode
    (``MNIST8K_SMOKE=1``) trains 1 epoch on 2,000 images. On an NVIDIA GPU the step is replayed
    from a CUDA graph (the same step, fewer launches; ``cuda_graph=False`` trains eagerly).
    """
    say = (lambda *args: None) if quiet else print
    if data.smoke_mode():
        config = dataclasses.replace(config, epochs=1)
        say(f"SMOKE MODE ({data.SMOKE_ENV}=1): 1 epoch, {data.SMOKE_TRAIN} train / {data.SMOKE_TEST} test images")
    device = device or choose_device(verbose=False)
    tuned = device.type == "cpu" and keep_freed_memory()  # same numbers, faster steps
    say(f"Device: {describe_device(device)}, torch {torch.__version__}"
        + ("; malloc keeps freed memory (helpers._machinery.cpu)" if tuned else ""))
    say(config)
    torch.manual_seed(config.seed)  # dropout masks repeat too
    model.to(device)
    train_loader, test_loader = loaders or make_loaders(config, device, root)
    images, labels = data.load_mnist(True, root)  # the first 10,000, unaugmented: how well it fits what it learns from
    clean_loader = data.FastLoader(images[:CLEAN_TRAIN_IMAGES], labels[:CLEAN_TRAIN_IMAGES], EVAL_BATCH, device=device)
    graphed = graphed_training(model, config, device, train_loader, planned_schedule, say) if cuda_graph else None
    if graphed is None:
        optimizer = make_optimizer(model, config)
        schedule = LrSchedule(optimizer, config, len(train_loader))
    averaged = average_of(model, config.ema_decay) if config.ema_decay else None
    tested = averaged.module if averaged is not None else model  # with averaging, the average is what we test
    history = History(config=dataclasses.asdict(config), params=count_parameters(model),
                      device=describe_device(device) + (", CUDA graph" if graphed else ""), smoke=data.smoke_mode())
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        if graphed is not None:  # the same step, replayed (helpers/_machinery/cuda_graph.py)
            lr = graphed.lr_of_next_step((epoch - 1) * len(train_loader))
            train_loss, train_acc = graphed.train_one_epoch(train_loader)
        else:
            lr = schedule.lr
            train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, schedule, progress,
                                                    desc=f"epoch {epoch}", label_smoothing=config.label_smoothing,
                                                    clip_grad_norm=config.clip_grad_norm, averaged=averaged)
            schedule.after_epoch()
        test_loss, correct, total = evaluate(tested, test_loader)
        seconds = time.perf_counter() - start  # training and the test pass
        test_acc = 100.0 * correct / total
        if averaged is not None:  # the raw weights too, to see what averaging bought
            history.raw_test_acc.append(accuracy(model, test_loader))
        for name, loader in (measure or {}).items():
            history.extra_acc.setdefault(name, []).append(accuracy(tested, loader))
        clean_train_acc = accuracy(tested, clean_loader)
        for name, value in [("lr", lr), ("train_loss", train_loss), ("train_acc", train_acc),
                            ("clean_train_acc", clean_train_acc), ("test_loss", test_loss), ("test_acc", test_acc),
                            ("test_correct", correct), ("seconds", seconds)]:
            getattr(history, name).append(value)
        say(f"epoch {epoch:2d}/{config.epochs}  lr {lr:.4f}  train loss {train_loss:.4f} acc {train_acc:6.2f}% (clean {clean_train_acc:6.2f}%)  "
              f"test loss {test_loss:.4f} acc {test_acc:6.2f}%"
              + (f" (raw weights {history.raw_test_acc[-1]:6.2f}%)" if averaged is not None else "") + f"  {seconds:5.1f} s")
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())  # from here on the model is the average
    return history


def accuracy(model, loader) -> float:
    """Test accuracy in percent over ``loader``."""
    _, correct, total = evaluate(model, loader)
    return 100.0 * correct / total


def average_of(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics (step 13).

    After every step: average = decay * average + (1 - decay) * weights. With
    decay 0.999 the average remembers roughly the last 1,000 steps (about two
    epochs at batch 128), so the epoch-to-epoch jitter of the last steps of a
    run is smoothed out without a single extra parameter.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def planned_schedule(config: Config, steps_per_epoch: int) -> tuple[list[float], list[float]]:
    """Every step's lr and Adam's beta1, computed ahead (the CUDA graph reads them from a table)."""
    dummy = make_optimizer(torch.nn.Linear(1, 1), config)
    return plan(LrSchedule(dummy, config, steps_per_epoch), config.epochs, steps_per_epoch)


SEEDS_ENV = "MNIST8K_SEEDS"  # "train": every notebook trains its extra seeds (make journey SEEDS=train)


def fit_seeds(make_model, config: Config, seeds: list[int], recorded: str | None = None, **fit_kwargs) -> list[History]:
    """Train the same architecture and config once per seed: how much of a result is luck?

    A seed sets the initial weights, the shuffle, the dropout masks and the
    augmentation. Each run is quiet; one line per seed says how it ended.
    With ``recorded`` (a seed table's name, e.g. "03_batchnorm_seeds") the runs are
    read from ``results/NAME.json`` instead, saying so: minutes on a CPU become
    seconds (unless MNIST8K_SEEDS=train, as ``make journey SEEDS=train`` sets).
    """
    wanted = os.environ.get(SEEDS_ENV)
    if wanted not in (None, "train"):
        raise ValueError(f"{SEEDS_ENV}={wanted!r}: the one value it takes is 'train' (make journey SEEDS=train)")
    if recorded is not None and wanted == "train":
        print(f"{SEEDS_ENV}=train: training the seeds instead of reading results/{recorded}.json")
        recorded = None
    histories = [] if recorded is None else _recorded_runs(make_model, config, recorded, seeds)
    for i, seed in enumerate(seeds):
        if recorded is None:
            set_seed(seed)
            histories.append(fit(make_model(), dataclasses.replace(config, seed=seed),
                                 **({"quiet": True, "progress": False} | fit_kwargs)))
        h = histories[i]
        print(f"seed {seed}: best {h.best_test_acc:.2f} % (epoch {h.best_epoch}), last {h.last_test_acc:.2f} %, "
              f"worst of last 3 {h.worst_of_last3:.2f} %, {len(h.epochs_at_target)} epochs at >= {TARGET} %  "
              f"({sum(h.seconds) / 60:.1f} min on {h.device})")
    return histories


def _recorded_runs(make_model, config: Config, recorded: str, seeds: list[int]) -> list[History]:
    """``fit_seeds``'s runs read from ``results/RECORDED.json``, refused if they describe another network or config."""
    print(f"Seeds {', '.join(map(str, seeds))}: recorded runs, read from results/{recorded}.json, not trained here")
    histories = records.recorded_histories(recorded, seeds)
    ignored = {"seed"} | ({"epochs"} if data.smoke_mode() else set())  # each run has its own seed; smoke runs 1 epoch
    ours, params = dataclasses.asdict(config), count_parameters(make_model())
    for h in histories:
        changed = sorted(k for k in ours.keys() - ignored if k in h.config and h.config[k] != ours[k])
        if changed or h.params != params:
            raise ValueError(f"results/{recorded}.json was recorded with another network or config "
                             f"({', '.join(changed) or 'parameter count'} differ): set TRAIN_SEEDS = True to train yours")
    return histories


@torch.inference_mode()
def predict_test_set(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, predicted labels, true labels) for the whole test set, on the CPU, for the error plots."""
    model.eval()
    images, labels = data.load_mnist(train=False)
    device = next(model.parameters()).device
    predicted = torch.cat([model(X).argmax(dim=1).cpu() for X, _ in data.FastLoader(images, labels, EVAL_BATCH, device=device)])
    return images, predicted, labels
