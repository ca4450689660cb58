"""Pictures of the data and of a run. Each function returns its matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .train import TARGET, History


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
    """Loss and accuracy per epoch, train against test: the gap tells over- from under-fitting.

    The running train accuracy is measured while dropout and augmentation are
    on; when the history has it, the clean one (eval mode, unaugmented
    training images) is drawn too, and that is the one to compare with test.
    """
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
