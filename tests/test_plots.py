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


def square_of(ax):
    (rect,) = [p for p in ax.patches]
    return rect.get_x(), rect.get_y(), rect.get_width()


def test_receptive_field_picture_draws_the_square_each_layer_sees():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1))
    image = torch.rand(1, 28, 28)
    fig = plots.receptive_field_picture(model, image)
    drawn = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title() for ax in drawn] == ["0\nRF 3", "1\nRF 5", "2\nRF 6", "3\nRF 10", "4\nRF 32"]
    # By hand: conv 28->26, the centre output pixel (13) looks at input pixels 13..15: the square from 12.5, 3 wide.
    assert square_of(drawn[0]) == (12.5, 12.5, 3)
    # conv 26->24: pixel 12 sees 12..16; pool 24->12: pixel 6 sees 12..17; padded conv: pixel 6 sees 10..19;
    # GAP over the 12x12 map (jump 2) adds 22: 32 pixels centred on 13.5, from -2 (padding) to 29.
    assert [square_of(ax) for ax in drawn[1:]] == [(11.5, 11.5, 5), (11.5, 11.5, 6), (9.5, 9.5, 10), (-2.5, -2.5, 32)]
    assert all(len(ax.get_images()) == 1 for ax in drawn)


def test_first_layer_kernels_shows_each_kernel_as_it_is():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 5, 3), nn.ReLU(), nn.Conv2d(5, 7, 3))
    fig = plots.first_layer_kernels(model, cols=4)
    shown = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(shown) == 5
    assert torch.equal(torch.tensor(shown[2]), model[0].weight.detach()[2, 0])


def test_feature_maps_one_row_per_3x3_convolution():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Conv2d(3, 10, 1))
    model.train()
    fig = plots.feature_maps(model, torch.rand(28, 28), per_layer=4)
    rows = [[ax for ax in fig.axes[i * 4:(i + 1) * 4]] for i in range(2)]
    assert len(fig.axes) == 8, "the 1x1 convolution is not drawn"
    assert [len([ax for ax in row if ax.get_images()]) for row in rows] == [4, 3]
    assert rows[0][0].get_images()[0].get_array().shape == (26, 26)
    assert rows[0][0].get_title(loc="left") == "0: 4 maps of 26×26"
    assert model.training, "the picture leaves the model in the mode it found"
