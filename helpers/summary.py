"""How big is a model, and how much of the image does each layer see? (step 01)"""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights: the budget this series squeezes under 8,000."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _pair(value) -> int:
    """Our layers are square: (3, 3) and 3 mean the same here."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"receptive_field_table handles square kernels/strides only, got {value}")
        return int(value[0])
    return int(value)


def receptive_field_table(model: nn.Module, input_size: tuple[int, int, int] = (1, 28, 28)) -> list[dict]:
    """One row per convolution or pooling layer, in the order the forward pass runs them.

    For each layer with kernel k, stride s and dilation d, with ``jump`` the
    distance in input pixels between two neighbouring outputs:

        receptive field out = receptive field in + (k - 1) * d * jump in
        jump out            = jump in * s
        start out           = start in + ((k - 1) * d / 2 - padding) * jump in

``start`` is where, in input pixels, the first output pixel's view is
centred (it moves left by the padding): ``plots.receptive_field_picture``
uses it to draw the region one output pixel sees.

    Global average pooling is a kernel as large as its input. Layers such as
    BatchNorm, ReLU or Dropout change neither, so they are left out. The
    receptive field may exceed the image (28): the border is padding.
    Each row also counts the layer's weights and its multiply-adds for one image (convolutions only):
    what a layer costs in arithmetic, which its parameter count does not say (step 10).
    """
    rows: list[dict] = []
    state = {"rf": 1, "jump": 1, "start": 0.0}

    def hook(module, inputs, output):
        size_in = inputs[0].shape[-1]
        if isinstance(module, nn.Conv2d):
            k, s, d = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
            p = _pair(module.padding) if not isinstance(module.padding, str) else (k - 1) * d // 2  # "same"
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(module.kernel_size)
            s = _pair(module.stride if module.stride is not None else module.kernel_size)
            d = _pair(getattr(module, "dilation", 1))
            p = _pair(module.padding)
        else:  # AdaptiveAvgPool2d / AdaptiveMaxPool2d to 1x1: global pooling
            if _pair(module.output_size) != 1:
                raise ValueError("receptive_field_table handles adaptive pooling to 1x1 only")
            k, s, d, p = size_in, 1, 1, 0
        state["start"] += ((k - 1) * d / 2 - p) * state["jump"]
        state["rf"] += (k - 1) * d * state["jump"]
        state["jump"] *= s
        name = names[module]
        # multiply-adds per image: every output number is a sum over (in channels / groups) x k x k inputs
        weights_per_output = module.in_channels // module.groups * k * k if isinstance(module, nn.Conv2d) else 0
        rows.append({"multiply_adds": output[0].numel() * weights_per_output,
                     "params": sum(p.numel() for p in module.parameters()),
                     "layer": name, "type": type(module).__name__, "kernel": k, "stride": s,
                     "input": size_in, "output": output.shape[-1], "channels": output.shape[1],
                     "jump": state["jump"], "receptive_field": state["rf"], "start": state["start"]})

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    names = {m: n for n, m in model.named_modules() if isinstance(m, kinds)}
    run_with_hooks(model, torch.zeros(1, *input_size), {m: hook for m in names})
    return rows


@torch.no_grad()
def run_with_hooks(model: nn.Module, X: torch.Tensor, hooks: dict) -> None:
    """One forward pass of ``X`` in eval mode with ``hooks`` ({module: hook(module, inputs, output)}) attached:
    how the tables and pictures look inside a network. Afterwards the model is as it was."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks.items()]
    was_training = model.training
    try:
        model.eval()
        model(X.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def format_receptive_field_table(rows: list[dict]) -> str:
    """The table as text, its layer and type columns as wide as their longest entry."""
    wide = max([len("layer"), *(len(r["layer"]) for r in rows)]) + 2
    kind = max([len("type"), *(len(r["type"]) for r in rows)]) + 2
    header = f"{'layer':<{wide}}{'type':<{kind}}{'k':>3}{'s':>3}{'in':>5}{'out':>5}{'ch':>5}{'jump':>6}{'RF':>5}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['layer']:<{wide}}{r['type']:<{kind}}{r['kernel']:>3}{r['stride']:>3}{r['input']:>5}"
                     f"{r['output']:>5}{r['channels']:>5}{r['jump']:>6}{r['receptive_field']:>5}")
    return "\n".join(lines)


def show_summary(model: nn.Module, input_size: tuple[int, int, int] = (1, 28, 28)) -> int:
    """Print torchsummary's layer table, the receptive-field table and the parameter count.

    Runs on a CPU copy so the output is the same on every machine (the
    notebooks check this cell's output against the stored one).
    """
    from torchsummary import summary

    cpu_model = copy.deepcopy(model).cpu()
    summary(cpu_model, input_size, device="cpu")
    print(format_receptive_field_table(receptive_field_table(cpu_model, input_size)))
    params = count_parameters(model)
    print(f"\nParameters: {params:,}")
    return params
