"""The small library every notebook of "MNIST under 8k" imports.

- ``helpers.data``: getting MNIST (online or offline) and the fast loader.
- ``helpers.train``: seeding, device, ``Config``, ``fit`` and its ``History``.
- ``helpers.summary``: parameter count, layer table, receptive field.
- ``helpers.plots``: samples, curves, mistakes, confusion matrix, the journey.
"""

from .data import ensure_mnist, load_mnist, smoke_mode
from .summary import count_parameters, receptive_field_table, show_summary
from .train import Config, History, choose_device, fit, fit_seeds, predict_test_set, save_run, save_seeds, set_seed

__all__ = ["Config", "History", "choose_device", "count_parameters", "ensure_mnist", "fit", "fit_seeds", "load_mnist",
           "predict_test_set", "receptive_field_table", "save_run", "save_seeds", "set_seed", "show_summary",
           "smoke_mode"]
