"""Pictures of the data, of a run, of seeds and of what a network sees. Each function returns its matplotlib Figure."""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import torch

from . import data, train
from .handwriting import to_grayscale
from .records import TARGET, History, SeedStats
from .summary import receptive_field_table, run_with_hooks


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
    scheduled = history.config.get("scheduler", "none") != "none"  # from step 06 on, a third panel: the lr itself
    fig, (ax_loss, ax_acc, *ax_lr) = plt.subplots(1, 3 if scheduled else 2, figsize=(15 if scheduled else 11, 3.8))
    if scheduled:
        lr_panel(ax_lr[0], history)
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


def lr_panel(ax, history: History) -> None:
    """The lr of every training step, as the schedule planned it, against the epoch (fractional: a step
    of epoch 5 halfway through is at 4.5); a dot per epoch at the lr it started with (``history.lr``)."""
    config = train.Config(**{k: v for k, v in history.config.items() if k in train.Config.__dataclass_fields__})
    steps = -(-len(data.load_mnist(True)[1]) // config.batch_size)  # batches per epoch, the last one short
    lrs, _ = train.planned_schedule(dataclasses.replace(config, epochs=history.epochs), steps)
    ax.plot([i / steps for i in range(len(lrs))], lrs, linewidth=1.5, label="every step")
    ax.plot(range(history.epochs), history.lr, "o", markersize=4, label="start of each epoch")
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    ax.annotate(f"peak {lrs[peak]:.3g}, in epoch {peak // steps + 1}", (peak / steps, lrs[peak]),
                textcoords="offset points", xytext=(8, -4), fontsize=9)
    ax.set(xlabel="epoch (a step's position: 4.5 is halfway through epoch 5)", ylabel="learning rate",
           title="learning rate")


def seed_dots(steps: dict[str, SeedStats], title: str = ""):
    """Each seed's worst of the last 3 epochs as a dot, one column per step, a line joining the same seed
    across steps: the picture of a paired comparison. Lines that all slope the same way are an effect the
    seeds agree on, even when the columns' spreads overlap."""
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(steps), 3.8))
    columns = list(steps.values())
    seeds = sorted(set().union(*(s.worst for s in columns)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for seed, color in zip(seeds, colors * len(seeds)):
        x = [i for i, s in enumerate(columns) if seed in s.worst]
        ax.plot(x, [columns[i].worst[seed] for i in x], "o-", color=color, label=f"seed {seed}", markersize=7)
    for i, s in enumerate(columns):
        ax.plot([i - 0.2, i + 0.2], [s.mean] * 2, color="black", linewidth=2, gid="mean")
    ax.plot([], [], color="black", linewidth=2, label="mean")
    ax.axhline(TARGET, color="gray", linestyle="--", linewidth=1)
    ax.set(xticks=range(len(steps)), xticklabels=list(steps), xlim=(-0.5, len(steps) - 0.5),
           ylabel="worst of the last 3 epochs (%)", title=title or "each seed, across steps")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def weight_average(histories: list[History], first_epoch: int = 8):
    """Test accuracy of the raw weights (left) and of their running average (right), one line per seed, from
    ``first_epoch`` on (step 13). The raw weights take a noisy step each batch, so their test accuracy
    jumps from epoch to epoch; an exponential moving average of them (``Config.ema_decay``) spans
    hundreds of steps and moves smoothly. Needs runs trained with an average (``History.raw_test_acc``)."""
    SeedStats.of_raw_weights(histories)  # refuses runs trained without an average, saying how to fix it
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, label, curves in zip(axes, ("raw weights", "averaged weights (what is tested)"),
                                 ([h.raw_test_acc for h in histories], [h.test_acc for h in histories])):
        for i, (h, curve) in enumerate(zip(histories, curves)):
            epochs = range(first_epoch, len(curve) + 1)
            ax.plot(epochs, curve[first_epoch - 1:], "o-", color=colors[i % len(colors)], markersize=4,
                    label=f"seed {h.config.get('seed')}")
        ax.axhline(TARGET, color="gray", linestyle="--", linewidth=1)
        ax.set(xlabel="epoch", title=label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


@torch.no_grad()
def relu_inputs(models: dict[str, torch.nn.Module], images: torch.Tensor, layers: int = 3):
    """What each channel hands its ReLU, per model: a bar from the 5th to the 95th percentile over a batch
    of digits and a dot at the median, for the first ``layers`` 3x3 convolutions (step 03). Without
    BatchNorm every channel has its own offset and scale; with it they all start from mean 0 and
    variance 1 (then their learned shift and scale). Returns the figure and, per model, a (channels, 3)
    tensor of (5th, 50th, 95th) percentiles per layer."""
    if images.dtype == torch.uint8:  # as MNIST stores them: the batch the loader would make of them
        images = data.make_batch(images.unsqueeze(1))
    drawn: dict[str, list[torch.Tensor]] = {}
    for label, model in models.items():
        relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
        seen: list[torch.Tensor] = []
        run_with_hooks(model, images, {m: (lambda mod, inp, out: seen.append(inp[0].transpose(0, 1).flatten(1)))
                                       for m in relus})
        drawn[label] = [torch.quantile(x.cpu(), torch.tensor([0.05, 0.5, 0.95]), dim=1).T for x in seen[:layers]]
    fig, axes = plt.subplots(len(models), layers, figsize=(4.2 * layers, 2.6 * len(models)), squeeze=False,
                             sharey="col")
    for row, (label, per_layer) in zip(axes, drawn.items()):
        for layer, (ax, q) in enumerate(zip(row, per_layer), 1):
            ax.vlines(range(len(q)), q[:, 0], q[:, 2], linewidth=3, alpha=0.6)
            ax.plot(range(len(q)), q[:, 1], "k.", markersize=5)
            ax.axhline(0, color="gray", linewidth=0.8)
            ax.set(title=f"{label}: convolution {layer}", xlabel="channel")
        row[0].set_ylabel("value into the ReLU")
    fig.suptitle("what each channel hands its ReLU: 5th to 95th percentile over the digits, dot at the median")
    fig.tight_layout()
    return fig, drawn


@torch.no_grad()
def dropped_maps(model: torch.nn.Module, image: torch.Tensor, p: float, per_layer: int = 8, seed: int = 0):
    """The maps of the first 3x3 convolution for one digit, then the same maps through ``Dropout2d(p)`` in
    training mode (step 04): whole maps become zero, the rest are scaled by 1 / (1 - p) so that the
    layer's average output is unchanged. Returns the figure and the dropped maps (C, H, W)."""
    if image.dtype == torch.uint8:
        image = data.make_batch(image)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    block = next(m for m in model.modules() if isinstance(m, torch.nn.Sequential) and conv in list(m.children()))
    maps: list[torch.Tensor] = []
    run_with_hooks(model, image.reshape(1, 1, *image.shape[-2:]), {block: lambda mod, inp, out: maps.append(out[0])})
    torch.manual_seed(seed)
    kept = torch.nn.functional.dropout2d(maps[0].cpu().unsqueeze(0), p, training=True)[0]
    fig, axes = plt.subplots(2, per_layer, figsize=(per_layer * 1.05, 2.6), squeeze=False)
    for i in range(per_layer):
        for row, source in enumerate((maps[0].cpu(), kept)):
            axes[row, i].imshow(source[i], cmap="viridis", vmin=0, vmax=float(kept.max()))
            axes[row, i].axis("off")
        axes[1, i].set_title("dropped" if not kept[i].any() else f"×{1 / (1 - p):.2f}", fontsize=8)
    axes[0, 0].set_title("the maps", fontsize=8, loc="left")
    fig.suptitle(f"Dropout2d({p}) in training: whole maps become zero, the others are scaled up")
    fig.tight_layout()
    return fig, kept


def augmented_pairs(images: torch.Tensor, degrees: float, translate: float = 0.0, count: int = 8):
    """Digits as stored (top), turned by +``degrees`` and shifted by +``translate`` (middle), and by the
    opposite (bottom): the extremes of what the random augmentation draws (step 05). Returns the figure
    and the two transformed batches."""
    X = images[:count].float().unsqueeze(1) / 255 if images.dtype == torch.uint8 else images[:count]
    n = torch.ones(len(X))
    turned = [data.affine(X, sign * degrees * n, sign * translate * n, sign * translate * n, n) for sign in (1, -1)]
    fig, axes = plt.subplots(3, count, figsize=(count * 1.0, 3.4), squeeze=False)
    for row, (batch, label) in enumerate(zip([X, *turned], ["as stored", f"+{degrees:g}°", f"−{degrees:g}°"])):
        for ax, image in zip(axes[row], batch):
            ax.imshow(image.squeeze(), cmap="gray_r")
            ax.axis("off")
        axes[row, 0].set_title(label, fontsize=8, loc="left")
    fig.suptitle(f"augmentation at its extremes: rotation ±{degrees:g}°"
                 + (f", shift ±{translate:.0%} of the image" if translate else ""))
    fig.tight_layout()
    return fig, turned


def layer_costs(models: dict[str, torch.nn.Module]):
    """Weights and multiply-adds per image, convolution by convolution, one row per model (step 10): a
    weight in a late layer is used on few pixels, one in an early layer on many."""
    rows = {label: [r for r in receptive_field_table(m) if r["type"] == "Conv2d"] for label, m in models.items()}
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 2.8 * len(models)), squeeze=False, sharey="col")
    for (label, layer_rows), (ax_p, ax_m) in zip(rows.items(), axes):
        names = [f"{r['layer']}\n{r['output']}×{r['output']}" for r in layer_rows]
        for ax, key, what in ((ax_p, "params", "weights"), (ax_m, "multiply_adds", "multiply-adds per image")):
            values = [r[key] for r in layer_rows]
            ax.bar(range(len(values)), values)
            ax.set_xticks(range(len(values)), names, fontsize=7)
            ax.set_title(f"{label}: {what}, {sum(values):,} in all", fontsize=10)
    fig.tight_layout()
    return fig, rows


def digit_reading(picture, prepared: torch.Tensor, probabilities: torch.Tensor):
    """Your digit as given (any picture ``handwriting.to_grayscale`` reads), as the network sees it (28x28, prepared the MNIST way: ``helpers.handwriting``)
    and the ten probabilities it gives (step 13)."""
    fig, (ax_in, ax_seen, ax_p) = plt.subplots(1, 3, figsize=(11, 3.2), gridspec_kw={"width_ratios": [1, 1, 2]})
    ax_in.imshow(to_grayscale(picture), cmap="gray", vmin=0, vmax=1)  # a path, a PIL image, an array: as given
    ax_seen.imshow(prepared.reshape(28, 28).cpu(), cmap="gray")
    for ax, title in ((ax_in, "as given"), (ax_seen, "as the network sees it")):
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    guess = int(probabilities.argmax())
    bars = ax_p.bar(range(10), probabilities.tolist(), color="lightgray")
    bars[guess].set_color("crimson")
    ax_p.set(xticks=range(10), ylim=(0, 1), xlabel="digit", ylabel="probability",
             title=f"it reads {guess} ({probabilities[guess]:.1%})")
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


def receptive_field_picture(model: torch.nn.Module, image: torch.Tensor, cols: int = 6):
    """One digit per layer, with the square of it that the centre pixel of that layer's output sees (step 01):
    ``receptive_field_table``'s numbers; a square reaching outside the image sees zero padding there."""
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


@torch.no_grad()
def feature_maps(model: torch.nn.Module, image: torch.Tensor, per_layer: int = 8):
    """One digit (uint8 as MNIST stores it, or as the network sees it) through the network: the first
    ``per_layer`` maps each 3x3 convolution outputs, a row per layer."""
    if image.dtype == torch.uint8:
        image = data.make_batch(image)
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
