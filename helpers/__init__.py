"""The small library every notebook of "MNIST under 8k" imports: the lesson's code, meant to be read.

- ``helpers.data``: MNIST as tensors, batch augmentation, the fast loader.
- ``helpers.train``: seeding, device, ``Config``, the lr schedule, the loop, ``fit``.
- ``helpers.records``: a run's ``History``, the seed statistic ``SeedStats``, saving and loading runs.
- ``helpers.summary``: parameter count, layer table, receptive field.
- ``helpers.plots``: samples, curves, seeds, what a network sees, mistakes, a search's map.
- ``helpers.designs``: networks written as short strings ("c8 c8 p c10 c12 h"), a search's records scored.
- ``helpers.handwriting``: any picture of a digit made the way MNIST was, for the final model to read.

Set aside, skippable: ``helpers._machinery`` (fetching and checking MNIST, the
CUDA graph, a malloc setting, the test command's smoke mode). The maintainers'
tools (notebook runner, README, benchmark, search) live in ``tools/`` beside
this package and import it, never the other way round.
"""

from .data import FastLoader, ensure_mnist, load_mnist, smoke_mode
from .records import (History, SeedStats, load_weights, project_root, recorded_seeds, save_history, save_run,
                      save_seeds)
from .summary import count_parameters, receptive_field_table, show_summary
from .train import Config, choose_device, fit, fit_seeds, predict_test_set, set_seed

__all__ = ["Config", "FastLoader", "History", "SeedStats", "choose_device", "count_parameters", "ensure_mnist", "fit",
           "fit_seeds", "load_mnist", "load_weights", "predict_test_set", "project_root", "receptive_field_table",
           "recorded_seeds", "save_history", "save_run", "save_seeds", "set_seed", "show_summary", "smoke_mode"]
