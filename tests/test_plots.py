"""The pictures: what each one draws (images, titles, axes, curve lengths), not only that it returns a Figure."""

import pytest
import torch

from helpers import plots
from helpers.records import SeedStats
from tests.test_records import fake_history


def figure_title(fig) -> str:
    """The figure's own title (``suptitle``): the one text of the figure that no axes holds."""
    return " ".join(t.get_text() for t in fig.texts)


def shown_images(fig) -> int:
    return sum(len(ax.get_images()) for ax in fig.axes)


def test_sample_grid_draws_each_image_with_its_label():
    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    fig = plots.sample_grid(images, labels, rows=2, cols=10, title="first 20")
    assert shown_images(fig) == 20
    assert [ax.get_title() for ax in fig.axes][:12] == [str(i % 10) for i in range(12)]
    assert figure_title(fig) == "first 20"


def test_gallery_shows_only_the_mistakes_titled_true_then_predicted():
    images = torch.rand(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    predicted = labels.clone()
    predicted[[3, 7, 25]] = torch.tensor([0, 1, 2])
    fig = plots.misclassified_gallery(images, predicted, labels)
    assert shown_images(fig) == 3
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["3→0", "7→1", "5→2"]
    assert figure_title(fig).startswith("3 misclassified")
    first = next(ax for ax in fig.axes if ax.get_images())
    assert torch.equal(torch.tensor(first.get_images()[0].get_array()), images[3].squeeze())


def test_gallery_stops_at_count():
    labels = torch.zeros(50, dtype=torch.long)
    fig = plots.misclassified_gallery(torch.rand(50, 1, 28, 28), torch.ones(50, dtype=torch.long), labels, count=12)
    assert shown_images(fig) == 12
    assert figure_title(fig).startswith("50 misclassified")


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


def test_feature_maps_take_an_image_as_mnist_stores_it():
    from torch import nn

    from helpers import data

    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    stored = torch.randint(0, 256, (28, 28), dtype=torch.uint8)
    fig = plots.feature_maps(nn.Sequential(nn.Conv2d(1, 1, 3), conv), stored, per_layer=1)
    assert fig.axes[0].get_images(), "a uint8 image goes through (scaled and normalized as the loaders do)"
    as_seen = data.normalize(stored.float() / 255)
    assert as_seen.min() < 0 < as_seen.max()


def test_search_map_draws_every_candidate_with_its_seed_range_and_rings_the_choice():
    from tests.test_designs import scored

    cpu = {"a": scored([99.5] * 3, [99.4] * 3, [99.45] * 3, params=4_000), "b": scored([99.3] * 3, params=3_000)}
    gpu = {"a": scored([99.47] * 3, params=4_000)}
    fig = plots.search_map({"GPU": gpu, "CPU": cpu}, chosen=("CPU", "a"), budget=5_000)
    ax = fig.axes[0]
    points = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines if len(line.get_xdata()) == 1]
    assert (4_007.5, pytest.approx(99.45)) in points and (2_992.5 + 15, 99.3) in points  # groups sit 15 apart
    bars = [line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]]
    assert any(list(bar.get_ydata()) == [99.4, 99.5] for bar in bars), "the bar runs from the lowest seed to the highest"
    rings = [line for line in ax.lines if line.get_markersize() == 18]
    assert len(rings) == 1 and rings[0].get_xdata()[0] == 4_007.5
    hollow = [line for line in ax.lines if len(line.get_xdata()) == 1 and line.get_markerfacecolor() == "white"]
    assert len(hollow) == 2, "the one-seed candidates are hollow"
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["GPU (1 candidates)", "CPU (2 candidates)"]


def test_training_curves_draw_the_planned_lr_of_a_scheduled_run(mnist_root, full_data):
    h = fake_history([97.0, 98.5, 99.1])
    h.config = {"scheduler": "onecycle", "max_lr": 0.01, "pct_start": 0.3, "epochs": 3, "batch_size": 128}
    h.lr = [0.0004, 0.008, 0.005]
    ax_lr = plots.training_curves(h).axes[2]
    steps = plots.data.load_mnist(True)[1].numel() // 128 + 1
    every = next(line for line in ax_lr.get_lines() if line.get_label() == "every step")
    assert len(every.get_xdata()) == 3 * steps and max(every.get_ydata()) == pytest.approx(0.01)
    peak = int(every.get_ydata().argmax())  # 30 % of 3 epochs: in epoch 1, at 0.9 epochs
    assert every.get_xdata()[peak] == pytest.approx(0.9, abs=2 / steps)  # OneCycleLR peaks a step early
    assert any("in epoch 1" in t.get_text() for t in ax_lr.texts)
    dots = next(line for line in ax_lr.get_lines() if line.get_label() == "start of each epoch")
    assert list(dots.get_ydata()) == h.lr


def test_a_constant_lr_gets_no_lr_panel():
    h = fake_history([97.0, 98.5])
    h.config = {"scheduler": "none"}
    assert len(plots.training_curves(h).axes) == 2


def test_seed_dots_join_each_seed_across_steps_and_mark_the_means():
    before = SeedStats({1: 99.0, 2: 98.8, 3: 99.1})
    after = SeedStats({1: 99.3, 2: 99.2, 3: 99.4})
    ax = plots.seed_dots({"a": before, "b": after}).axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["seed 2"] == [98.8, 99.2]
    means = [line for line in ax.get_lines() if line.get_gid() == "mean"]
    assert sorted(m.get_ydata()[0] for m in means) == pytest.approx([before.mean, after.mean])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def test_relu_inputs_line_up_channels_only_with_batchnorm():
    from helpers.designs import build

    torch.manual_seed(0)
    X = torch.randn(64, 1, 28, 28)
    plain, normed = build("c8 c8 h", batchnorm=False), build("c8 c8 h")
    normed.train()  # BatchNorm with this batch's statistics: each channel exactly mean 0, variance 1
    with torch.no_grad():
        plain[0][0].weight.mul_(torch.arange(1, 9).float().view(8, 1, 1, 1) * 10)  # channel k scaled by 10 k
    _, drawn = plots.relu_inputs({"plain": plain, "normed": normed}, X, layers=1)
    spread = lambda q: (q[:, 2] - q[:, 0])  # noqa: E731
    assert spread(drawn["plain"][0]).max() > 5 * spread(drawn["plain"][0]).min()
    assert spread(drawn["normed"][0]).max() < 1.5 * spread(drawn["normed"][0]).min()


def test_dropped_maps_zero_whole_maps_and_scale_the_rest():
    from helpers.designs import build

    torch.manual_seed(0)
    model = build("c8 c8 h")
    fig, kept = plots.dropped_maps(model, torch.randint(0, 255, (28, 28), dtype=torch.uint8), p=0.5)
    dropped = [i for i in range(8) if not kept[i].any()]
    assert 0 < len(dropped) < 8
    assert [ax.get_title() for ax in fig.axes[8:]].count("dropped") == len(dropped)
    survivor = next(i for i in range(8) if i not in dropped and fig.axes[i].get_images()[0].get_array().max() > 0)
    original = torch.tensor(fig.axes[survivor].get_images()[0].get_array())
    assert torch.allclose(kept[survivor], 2 * original)


def test_augmented_pairs_are_the_extremes_and_visibly_turned():
    from helpers import data

    images, _ = data.load_mnist(False)
    fig, (plus, minus) = plots.augmented_pairs(images, degrees=15, count=4)
    X = images[:4].float().unsqueeze(1) / 255
    one = torch.ones(4)
    assert torch.equal(plus, data.affine(X, 15 * one, 0 * one, 0 * one, one))
    assert torch.equal(minus, data.affine(X, -15 * one, 0 * one, 0 * one, one))
    assert ((plus - X).abs() > 0.5).float().mean() > 0.03  # a few percent of the pixels change: visible
    assert shown_images(fig) == 12


def test_layer_costs_count_weights_and_multiply_adds_per_convolution():
    from helpers.designs import build

    fig, rows = plots.layer_costs({"m": build("c8 p c4 h")})
    assert [r["params"] for r in rows["m"]] == [1 * 8 * 9, 8 * 4 * 9, 4 * 10]
    assert [r["multiply_adds"] for r in rows["m"]] == [26 * 26 * 8 * 9, 11 * 11 * 4 * 8 * 9, 11 * 11 * 10 * 4]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"m: weights, {72 + 288 + 40:,} in all",
                      f"m: multiply-adds per image, {48672 + 34848 + 4840:,} in all"]


def test_weight_average_draws_raw_and_averaged_accuracy_per_seed_from_the_first_epoch_asked():
    runs = []
    for seed, (raw, averaged) in enumerate([([99.0, 99.3, 99.1, 99.45], [99.2, 99.4, 99.42, 99.5]),
                                            ([98.9, 99.2, 99.35, 99.4], [99.1, 99.3, 99.44, 99.46])], 1):
        h = fake_history(averaged)
        h.config, h.raw_test_acc = {"seed": seed}, raw
        runs.append(h)
    fig = plots.weight_average(runs, first_epoch=2)
    left, right = fig.axes
    assert "raw" in left.get_title() and "averaged" in right.get_title()
    drawn = {ax.get_title(): [list(line.get_ydata()) for line in ax.get_lines() if line.get_label().startswith("seed")]
             for ax in (left, right)}
    assert drawn[left.get_title()] == [[99.3, 99.1, 99.45], [99.2, 99.35, 99.4]], "raw curves from epoch 2"
    assert drawn[right.get_title()] == [[99.4, 99.42, 99.5], [99.3, 99.44, 99.46]]
    assert list(left.get_lines()[0].get_xdata()) == [2, 3, 4]
    plain = fake_history([99.0, 99.5])
    with pytest.raises(ValueError, match="ema_decay=0.999"):
        plots.weight_average([plain])
