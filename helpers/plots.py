"""Pictures of the data, of a run and of what a network sees. Each function returns its matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from . import data
from .records import TARGET, History
from .summary import run_with_hooks


def sample_grid(images: torch.Tensor, labels: torch.Tensor, rows: int = 4, cols: int = 10, title: str = ""):
    """The first rows*cols images with their labels (step 01: look at the data first)."""
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.0))
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(image.squeeze().cpu(), cmap="gray_r")
        ax.set_title(int(label), fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history: History, title: str = ""):
    """Loss and accuracy per epoch, train against test: the gap tells over- from under-fitting. Compare test with
    the clean train accuracy (eval mode, unaugmented images), not the running one (dropout, augmentation on)."""
    epochs = range(1, history.epochs + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_loss.plot(epochs, history.train_loss, "o-", label="train (running)")
    ax_loss.plot(epochs, history.test_loss, "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss (log scale)", title="loss", yscale="log")
    ax_acc.plot(epochs, history.train_acc, "o-", label="train (running)", alpha=0.6)
    curves = [history.train_acc, history.test_acc]
    if history.clean_train_acc:
        ax_acc.plot(epochs, history.clean_train_acc, "o-", label="train (eval mode, no augmentation)")
        curves.append(history.clean_train_acc)
    ax_acc.plot(epochs, history.test_acc, "o-", label="test")
    ax_acc.axhline(TARGET, color="gray", linestyle="--", linewidth=1, label=f"{TARGET} %")
    low = min(min(curve[-history.epochs // 2:]) for curve in curves)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(max(low - 0.5, 90), 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def misclassified_gallery(images: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor,
                          count: int = 30, cols: int = 10):
    """The first ``count`` test images the model gets wrong, titled 'true → predicted'."""
    wrong = (predicted != labels).nonzero().flatten()[:count]
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.95, rows * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(images[i].squeeze().cpu(), cmap="gray_r")
        ax.set_title(f"{int(labels[i])}→{int(predicted[i])}", fontsize=9, color="crimson")
    fig.suptitle(f"{int((predicted != labels).sum())} misclassified test images (true→predicted), first {len(wrong)}")
    fig.tight_layout()
    return fig


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, classes: int = 10):
    """Counts of (true, predicted) pairs; the off-diagonal cells are the mistakes."""
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((labels.long(), predicted.long()), torch.ones(len(labels), dtype=torch.long), accumulate=True)
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.imshow(matrix.clamp(max=matrix.diagonal().min().item()), cmap="Blues")
    for t in range(classes):
        for p in range(classes):
            if matrix[t, p]:
                ax.text(p, t, int(matrix[t, p]), ha="center", va="center", fontsize=8,
                        color="white" if t == p else "black")
    ax.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true",
           title="confusion matrix (test set)")
    fig.tight_layout()
    return fig, matrix


def receptive_field_picture(model: torch.nn.Module, image: torch.Tensor, cols: int = 6):
    """One digit per layer, with the square of it that the centre pixel of that layer's output sees (step 01):
    ``receptive_field_table``'s numbers; a square reaching outside the image sees zero padding there."""
    from .summary import receptive_field_table

    rows = receptive_field_table(model, tuple(image.shape[-3:]))
    n = len(rows)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(cols * 1.9, -(-n // cols) * 2.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    size = image.shape[-1]
    for ax, row in zip(axes.flat, rows):
        centre = row["start"] + (row["output"] // 2) * row["jump"]
        low = centre - (row["receptive_field"] - 1) / 2
        ax.imshow(image.squeeze().cpu(), cmap="gray_r", extent=(-0.5, size - 0.5, size - 0.5, -0.5))
        ax.add_patch(plt.Rectangle((low - 0.5, low - 0.5), row["receptive_field"], row["receptive_field"],
                                   fill=False, edgecolor="crimson", linewidth=2, clip_on=False))
        ax.set(xlim=(-4, size + 3), ylim=(size + 3, -4))
        ax.set_title(f"{row['layer']}\nRF {row['receptive_field']}", fontsize=9)
    fig.suptitle("what one output pixel of each layer sees (red square)")
    fig.tight_layout()
    return fig


def first_layer_kernels(model: torch.nn.Module, cols: int = 8):
    """The weights of the first convolution, one small image per kernel: edge and stroke detectors."""
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    kernels = conv.weight.detach().cpu()[:, 0]  # (out_channels, k, k): MNIST has one input channel
    rows = -(-len(kernels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    limit = kernels.abs().max().item()
    for i, (ax, kernel) in enumerate(zip(axes.flat, kernels)):
        ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(i), fontsize=8)
    fig.suptitle("first-layer kernels (red: positive weight, blue: negative)")
    fig.tight_layout()
    return fig


@torch.no_grad()
def feature_maps(model: torch.nn.Module, image: torch.Tensor, per_layer: int = 8):
    """One digit (uint8 as MNIST stores it, or as the network sees it) through the network: the first
    ``per_layer`` maps each 3x3 convolution outputs, a row per layer."""
    if image.dtype == torch.uint8:
        image = data.normalize(image.float() / 255)
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    outputs: dict[str, torch.Tensor] = {}
    run_with_hooks(model, image.reshape(1, 1, *image.shape[-2:]),
                   {m: (lambda mod, inp, out, name=name: outputs.__setitem__(name, out[0].cpu())) for name, m in convs})
    fig, axes = plt.subplots(len(convs), per_layer, figsize=(per_layer * 1.05, len(convs) * 1.15), squeeze=False)
    for row, (name, _) in zip(axes, convs):
        maps = outputs[name]
        for i, ax in enumerate(row):
            ax.axis("off")
            if i < len(maps):
                ax.imshow(maps[i], cmap="viridis")
        row[0].set_title(f"{name}: {maps.shape[0]} maps of {maps.shape[1]}×{maps.shape[2]}", fontsize=8, loc="left")
    fig.suptitle("one digit through the network (first maps of each 3×3 convolution)")
    fig.tight_layout()
    return fig


def search_map(groups: dict[str, dict[str, dict]], chosen: tuple[str, str] | None = None, budget: int | None = None):
    """A search as one picture (step 12): each design's parameters against its worst of the last 3 epochs, a dot
    at the mean over seeds (hollow: under 3 seeds, a guess) and a bar from its lowest to its highest seed.
    ``groups``: {label: ``designs.score_folders(folder)``}; ``chosen``: (label, key), ringed."""
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((label, scores), marker, color) in enumerate(zip(groups.items(), "osD^v", colors)):
        shift = (i - (len(groups) - 1) / 2) * 15
        for key, s in scores.items():
            x, solid = s["params"] + shift, len(s["seeds"]) >= 3
            ax.plot([x, x], [s["worst"].lowest, s["worst"].highest], color=color, alpha=0.5, linewidth=1.5)
            ax.plot(x, s["worst"].mean, marker, color=color, markersize=7, markerfacecolor=color if solid else "white")
            if (label, key) == chosen:
                ax.plot(x, s["worst"].mean, "o", markersize=18, markerfacecolor="none", markeredgecolor="crimson",
                        markeredgewidth=2)
        ax.plot([], [], marker, color=color, label=f"{label} ({len(scores)} candidates)")
    ax.plot([], [], "o", color="gray", markerfacecolor="white", label="fewer than 3 seeds (hollow)")
    if chosen is not None:
        ax.plot([], [], "o", markersize=12, markerfacecolor="none", markeredgecolor="crimson", label="chosen")
    ax.axhline(TARGET, color="gray", linestyle="--", linewidth=1)
    if budget is not None:
        ax.axvline(budget, color="gray", linestyle=":", linewidth=1)
    ax.set(xlabel="parameters", ylabel="test accuracy (%), worst of the last 3 epochs",
           title="every candidate: mean over its seeds, bar from its lowest to its highest seed")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig
