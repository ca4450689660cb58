"""The pictures: what each one draws (images, titles, axes, curve lengths), not only that it returns a Figure."""

import torch

from helpers import plots
from tests.test_train import fake_history


def shown_images(fig) -> int:
    return sum(len(ax.get_images()) for ax in fig.axes)


def test_sample_grid_draws_each_image_with_its_label():
    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    fig = plots.sample_grid(images, labels, rows=2, cols=10, title="first 20")
    assert shown_images(fig) == 20
    assert [ax.get_title() for ax in fig.axes][:12] == [str(i % 10) for i in range(12)]
    assert fig._suptitle.get_text() == "first 20"


def test_gallery_shows_only_the_mistakes_titled_true_then_predicted():
    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    predicted = labels.clone()
    predicted[[3, 7, 25]] = torch.tensor([0, 1, 2])
    fig = plots.misclassified_gallery(images, predicted, labels)
    assert shown_images(fig) == 3
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["3→0", "7→1", "5→2"]
    assert fig._suptitle.get_text().startswith("3 misclassified")
    first = next(ax for ax in fig.axes if ax.get_images())
    assert torch.equal(torch.tensor(first.get_images()[0].get_array()), images[3].squeeze())


def test_gallery_stops_at_count():
    labels = torch.zeros(50, dtype=torch.long)
    fig = plots.misclassified_gallery(torch.rand(50, 1, 28, 28), torch.ones(50, dtype=torch.long), labels, count=12)
    assert shown_images(fig) == 12
    assert fig._suptitle.get_text().startswith("50 misclassified")


def test_confusion_matrix_counts_and_labels():
    labels = torch.tensor([0, 1, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 2, 2, 2, 0])
    fig, matrix = plots.confusion_matrix(predicted, labels, classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert sorted(t.get_text() for t in ax.texts) == sorted(["1", "1", "1", "1", "2"])


def test_training_curves_draw_one_point_per_epoch():
    h = fake_history([97.0, 98.5, 99.1, 99.3])
    fig = plots.training_curves(h, title="step 99")
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_yscale() == "log" and ax_acc.get_ylabel() == "accuracy (%)"
    curves = {line.get_label(): list(line.get_ydata()) for line in ax_acc.get_lines()}
    assert curves["test"] == [97.0, 98.5, 99.1, 99.3]
    assert len(curves["train (running)"]) == 4
    assert all(len(line.get_xdata()) == 4 for line in ax_loss.get_lines())


def test_training_curves_add_the_clean_train_accuracy_when_recorded():
    h = fake_history([97.0, 98.5, 99.1])
    h.clean_train_acc = [97.5, 98.9, 99.6]
    ax_acc = plots.training_curves(h).axes[1]
    curves = {line.get_label(): list(line.get_ydata()) for line in ax_acc.get_lines()}
    assert curves["train (eval mode, no augmentation)"] == [97.5, 98.9, 99.6]
