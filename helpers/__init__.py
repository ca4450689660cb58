"""The small library every notebook of "MNIST under 8k" imports: the lesson's code, meant to be read.

- ``helpers.data``: MNIST as tensors, batch augmentation, the fast loader (and the usual one, to compare).
- ``helpers.train``: seeding, device, ``Config``, the loop, ``fit`` and its ``History``.
- ``helpers.summary``: parameter count, layer table, receptive field.
- ``helpers.plots``: samples, curves, mistakes, confusion matrix, a search's map.
- ``helpers.designs``: networks written as short strings ("c8 c8 p c10 c12 h"), a search's records scored.

Set aside, skippable: ``helpers.files`` (where files go; fetching and checking
MNIST) and ``helpers.cpu_tuning`` (one malloc setting for Linux CPUs). The
maintainers' tools (notebook runner, README, benchmark, search) live in
``tools/`` beside this package and import it, never the other way round.
"""

from .data import FastLoader, load_mnist, smoke_mode
from .files import ensure_mnist, project_root
from .summary import count_parameters, receptive_field_table, show_summary
from .train import (Config, History, choose_device, fit, fit_seeds, load_weights, predict_test_set, save_history,
                    save_run, save_seeds, set_seed)

__all__ = ["Config", "FastLoader", "History", "choose_device", "count_parameters", "ensure_mnist", "fit", "fit_seeds",
           "load_mnist", "load_weights", "predict_test_set", "project_root", "receptive_field_table", "save_history", "save_run",
           "save_seeds", "set_seed", "show_summary", "smoke_mode"]
