"""Records: what a run leaves behind (``History``, step 01), where it goes (``save_run``, ``load_weights``),
and what several seeds say together (``SeedStats``, from step 02 on)."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._machinery.paths import ROOT_ENV, project_root, write_json  # noqa: F401  (where runs go; how JSON is written)
from ._machinery.smoke import smoke_folder, smoke_mode

TARGET = 99.4  # the accuracy this series aims at, in percent, on each of the last 3 epochs
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
    extra_acc: dict[str, list[float]] = field(default_factory=dict)  # accuracy on other sets fit was asked to measure

    epochs = property(lambda self: len(self.test_acc))
    best_test_acc = property(lambda self: max(self.test_acc))
    last_test_acc = property(lambda self: self.test_acc[-1])

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the best test accuracy (the first, if tied)."""
        return self.test_acc.index(self.best_test_acc) + 1

    @property
    def worst_of_last3(self) -> float:
        """The worst of the last 3 epochs: a claim that holds there is not one lucky epoch."""
        return worst_of_last3(self.test_acc)

    @property
    def epochs_at_target(self) -> list[int]:
        """1-based epochs whose test accuracy is at least 99.4 %."""
        return [i + 1 for i, acc in enumerate(self.test_acc) if acc >= TARGET]

    seconds_per_epoch = property(lambda self: sum(self.seconds) / len(self.seconds), doc="the mean")
    median_seconds_per_epoch = property(lambda self: statistics.median(self.seconds),
                                        doc="what a reader is shown: one stalled epoch pulls the mean up")

    def summary(self) -> dict:
        """The numbers a reader looks for first (stored with the history; ``last3_min`` is the worst of the last 3)."""
        return {
            "params": self.params, "epochs": self.epochs, "best_test_acc": self.best_test_acc,
            "best_epoch": self.best_epoch, "last_test_acc": self.last_test_acc, "last3_min": self.worst_of_last3,
            "last_train_acc": self.train_acc[-1],
            **({"last_clean_train_acc": self.clean_train_acc[-1]} if self.clean_train_acc else {}),
            "epochs_at_target": self.epochs_at_target,
            "seconds_per_epoch": round(self.seconds_per_epoch, 2), "device": self.device,
        }

    def fields(self) -> dict:
        """The fields as a dict; the optional ones (weight averaging, extra sets) only where they were used."""
        fields = dataclasses.asdict(self)
        for name in ("raw_test_acc", "extra_acc"):
            if not fields[name]:
                del fields[name]
        return fields

    def record(self) -> dict:
        """The history as stored: its fields and its summary."""
        return self.fields() | {"summary": self.summary()}

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.record())

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls.from_record(json.loads(Path(path).read_text()))

    @classmethod
    def from_record(cls, record: dict) -> "History":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in fields})  # other keys: the summary, added context


def worst_of_last3(test_acc: list[float]) -> float:
    """The lowest test accuracy of the last 3 epochs: the number the bar is about."""
    return min(test_acc[-3:])


def spread(values: Iterable[float]) -> dict:
    """Mean, standard deviation (n - 1; 0 for one value) and lowest of some numbers."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values)}


@dataclass(frozen=True)
class SeedStats:
    """The same design and recipe trained on several seeds: each seed's worst of the last 3 epochs.

    A seed sets the initial weights, the shuffle, the dropout masks and the
    augmentation, so one run is one draw. The bar (``TARGET`` on each of the
    last 3 epochs) is about every seed; the mean says how far above it a
    design usually lands, the lowest seed how close it comes to missing.
    """

    worst: dict[int, float]  # seed -> worst of its last 3 epochs, in seed order

    @classmethod
    def of_histories(cls, histories: Iterable[History]) -> "SeedStats":
        return cls.of_pairs((h.config["seed"], h.worst_of_last3) for h in histories)

    @classmethod
    def of_records(cls, records: Iterable[dict]) -> "SeedStats":
        """From stored runs (a search's records, or the histories of a seed table)."""
        return cls.of_pairs((r["config"]["seed"], worst_of_last3(r["test_acc"])) for r in records)

    @classmethod
    def of_table(cls, table: dict) -> "SeedStats":
        """From a seed table as ``save_seeds`` stores it (its rows)."""
        return cls.of_pairs((r["seed"], r["last3_min"]) for r in table["rows"])

    @classmethod
    def of_raw_weights(cls, histories: list[History]) -> "SeedStats":
        """The same runs on their raw weights, not the average they were tested on (``History.raw_test_acc``):
        pair it with ``of_histories`` of the same runs to see what the average is worth, seed by seed."""
        if missing := [h.config.get("seed") for h in histories if not h.raw_test_acc]:
            raise ValueError(f"seed(s) {missing} were trained without weight averaging (ema_decay=0): no raw "
                             "weights to compare; train with Config(ema_decay=0.999)")
        return cls.of_pairs((h.config["seed"], worst_of_last3(h.raw_test_acc)) for h in histories)

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[int, float]]) -> "SeedStats":
        pairs = sorted(pairs)
        if len({seed for seed, _ in pairs}) != len(pairs):
            raise ValueError(f"seeds {[seed for seed, _ in pairs]} repeat: each seed may count once")
        return cls(dict(pairs))

    seeds = property(lambda self: list(self.worst))
    n = property(lambda self: len(self.worst))
    mean = property(lambda self: spread(self.worst.values())["mean"])
    std = property(lambda self: spread(self.worst.values())["std"])  # n - 1 in the denominator
    lowest = property(lambda self: min(self.worst.values()))
    highest = property(lambda self: max(self.worst.values()))
    at_target = property(lambda self: sum(w >= TARGET for w in self.worst.values()), doc="seeds at the bar")
    all_at_target = property(lambda self: self.at_target == self.n)
    misses = property(lambda self: {seed: w for seed, w in self.worst.items() if w < TARGET})

    def paired(self, before: "SeedStats") -> "Paired":
        """This design against ``before``, seed by seed: each common seed's difference (this - before), their
        mean and its 95 % t interval. The same seed draws the same luck on both sides, so the differences
        vary far less than either side: the comparison sees smaller effects with fewer seeds."""
        from scipy import stats

        seeds = [seed for seed in self.worst if seed in before.worst]
        if len(seeds) < 2:
            raise ValueError(f"a paired comparison needs 2+ seeds run on both sides; common seeds: {seeds}")
        differences = [self.worst[seed] - before.worst[seed] for seed in seeds]
        mean, sd = statistics.fmean(differences), statistics.stdev(differences)
        half = stats.t.ppf(0.975, len(seeds) - 1) * sd / len(seeds) ** 0.5  # t with n - 1 degrees of freedom
        return Paired(seeds, differences, mean, mean - half, mean + half,
                      [before.worst[seed] for seed in seeds], [self.worst[seed] for seed in seeds])


@dataclass(frozen=True)
class Paired:
    """A paired difference over seeds: ``shown`` when its 95 % interval excludes zero, else not shown (never "no effect")."""

    seeds: list[int]
    differences: list[float]  # after - before, seed by seed
    mean: float
    low: float
    high: float
    before: list[float] = field(default_factory=list)
    after: list[float] = field(default_factory=list)
    shown = property(lambda self: self.low > 0 or self.high < 0)

    def __str__(self) -> str:
        verdict = "shown" if self.shown else f"not shown with {len(self.seeds)} seeds"
        return f"{self.mean:+.2f} points (95 % interval {self.low:+.2f} to {self.high:+.2f}; {verdict})"

    def table(self, before: str = "before", after: str = "after") -> str:
        """Seed by seed, then the mean difference and its interval: what a notebook prints under a comparison."""
        lines = [f"worst of the last 3 epochs (%)\n{'seed':>6}{before:>14}{after:>14}{'difference':>12}"]
        lines += [f"{seed:>6}{b:>14.2f}{a:>14.2f}{d:>+12.2f}"
                  for seed, b, a, d in zip(self.seeds, self.before, self.after, self.differences)]
        return "\n".join(lines + [f"mean difference {self}"])


def recorded_seeds(name: str) -> SeedStats:
    """A step's recorded seeds (``results/NAME.json``, as ``save_seeds`` stored it), to compare a later
    step with: always the project's record, also in smoke mode."""
    return SeedStats.of_table(_recorded(name))


def recorded_histories(name: str, seeds: list[int]) -> list[History]:
    """The runs of ``seeds`` that ``results/NAME.json`` stores: a learner without a GPU reads them
    instead of training them again (``fit_seeds(..., recorded=NAME)``)."""
    record = _recorded(name)
    by_seed = {h["config"]["seed"]: h for h in record["histories"]}
    missing = [seed for seed in seeds if seed not in by_seed]
    if missing:
        raise ValueError(f"results/{name}.json has no run for seed(s) {missing} (it has {sorted(by_seed)}): "
                         "train them instead (TRAIN_SEEDS = True)")
    return [History.from_record(by_seed[seed]) for seed in seeds]


def _recorded(name: str) -> dict:
    path = project_root() / "results" / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run that step first (make journey STEPS={name[:2]})")
    return json.loads(path.read_text())


def seed_summary(histories: list[History]) -> dict:
    """Per seed: best, last, worst of the last 3 epochs, epochs at >= 99.4 %; then mean, std and lowest of each.
    (The shape ``save_seeds`` stores: ``last3_min`` is the worst of the last 3.)"""
    stats = SeedStats.of_histories(histories)  # checks that no seed repeats
    rows = [{"seed": h.config["seed"], "best": h.best_test_acc, "last": h.last_test_acc, "last3_min": h.worst_of_last3,
             "epochs_at_target": len(h.epochs_at_target)} for h in histories]
    return {"params": histories[0].params, "epochs": histories[0].epochs, "rows": rows,
            "stats": {key: spread(r[key] for r in rows) for key in ("best", "last", "last3_min", "epochs_at_target")},
            "all_last3_at_target": stats.all_at_target}


def format_seed_table(summary: dict) -> str:
    lines = [f"{'seed':>5}{'best %':>9}{'last %':>9}{'min last 3 %':>14}{'epochs >= 99.4':>16}"]
    for r in summary["rows"]:
        lines.append(f"{r['seed']:>5}{r['best']:>9.2f}{r['last']:>9.2f}{r['last3_min']:>14.2f}{r['epochs_at_target']:>16}")
    s = summary["stats"]
    for name in ("mean", "std"):
        lines.append(f"{name:>5}{s['best'][name]:>9.2f}{s['last'][name]:>9.2f}{s['last3_min'][name]:>14.2f}"
                     f"{s['epochs_at_target'][name]:>16.1f}")
    return "\n".join(lines)


def output_base(smoke: bool) -> Path:
    """Where runs are recorded: the project root, or a temporary folder for smoke runs."""
    return smoke_folder() if smoke else project_root()


def save_run(model: torch.nn.Module, history: History, name: str) -> None:
    """Store a step's history in results/NAME.json and its final weights in models/NAME.pt."""
    base = output_base(history.smoke)
    history.save(base / "results" / f"{name}.json")
    weights = base / "models" / f"{name}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, weights)
    where = "a temporary folder (smoke run)" if history.smoke else "the project"
    print(f"Saved results/{name}.json and models/{name}.pt in {where}")


def save_history(history: History, name: str) -> Path:
    """Store a history read back from elsewhere (step 12: a search record) in results/NAME.json. In smoke
    mode it goes to a temporary folder even though the run it describes was real."""
    return history.save(output_base(history.smoke or smoke_mode()) / "results" / f"{name}.json")


def save_seeds(histories: list[History], name: str) -> dict:
    """Summarize a multi-seed run, print the table, store it and every seed's history in results/NAME.json."""
    summary = seed_summary(histories)
    print(format_seed_table(summary))
    record = summary | {"histories": [h.fields() for h in histories]}
    write_json(output_base(histories[0].smoke or smoke_mode()) / "results" / f"{name}.json", record)
    return summary


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
