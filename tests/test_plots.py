import matplotlib.figure
import torch

from helpers import plots
from tests.test_train import fake_history


def test_sample_grid_and_gallery():
    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    assert isinstance(plots.sample_grid(images, labels), matplotlib.figure.Figure)
    predicted = labels.clone()
    predicted[[3, 7]] = 0
    fig = plots.misclassified_gallery(images, predicted, labels)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["3→0", "7→0"]


def test_confusion_matrix_counts():
    labels = torch.tensor([0, 1, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 2, 2, 2, 0])
    _, matrix = plots.confusion_matrix(predicted, labels, classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]


def test_curves_and_journey(tmp_path):
    h = fake_history([97.0, 98.5, 99.1])
    assert isinstance(plots.training_curves(h), matplotlib.figure.Figure)
    paths = [h.save(tmp_path / "01_a.json"), fake_history([99.0, 99.5]).save(tmp_path / "02_b.json")]
    assert isinstance(plots.journey_plot(paths), matplotlib.figure.Figure)
