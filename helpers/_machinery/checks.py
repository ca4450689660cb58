"""Checking a ``Config`` before a run starts: a wrong value fails at once, with a message that names it."""

from __future__ import annotations

import math


def check_config(config) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` (a ``helpers.train.Config``) that is out of range."""
    def check(name: str, ok: bool, allowed: str) -> None:
        if not ok:
            raise ValueError(f"Config.{name}={getattr(config, name)!r} is invalid: allowed {allowed}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def number(name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
        v = getattr(config, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        check(name, ok, f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")

    check("epochs", is_int(config.epochs) and 1 <= config.epochs <= 100, "an integer in [1, 100]")
    check("batch_size", is_int(config.batch_size) and 1 <= config.batch_size <= 60_000, "an integer in [1, 60000]")
    check("optimizer", config.optimizer in ("sgd", "adam", "adamw"), "'sgd', 'adam' or 'adamw'")
    number("lr", 0, 10, low_open=True)
    number("momentum", 0, 1, high_open=True)
    number("weight_decay", 0, 1)
    check("scheduler", config.scheduler in ("none", "step", "onecycle"), "'none', 'step' or 'onecycle'")
    check("step_size", is_int(config.step_size) and config.step_size >= 1, "an integer >= 1")
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
    check("ema_decay", isinstance(config.ema_decay, (int, float)) and not isinstance(config.ema_decay, bool)
          and (config.ema_decay == 0 or 0.5 <= config.ema_decay < 1),
          "0 (no averaging) or a decay in [0.5, 1), e.g. 0.999: each step keeps that fraction of the average")
    check("seed", is_int(config.seed) and config.seed >= 0, "an integer >= 0")
