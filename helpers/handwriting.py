"""Try your own handwriting (step 13): any picture of a digit, made into the kind of image MNIST holds.

A network only knows the images it was trained on. MNIST's digits were made
in a fixed way, so a photo or a drawing must go through the same steps
before the network can read it:

1. grayscale, light ink on a dark background (MNIST's ink is bright);
2. the ink's bounding box scaled to fit a 20x20 box, keeping its shape
   (MNIST's digits were size-normalized this way, with anti-aliasing: grey edges);
3. placed in a 28x28 image so that the ink's centre of mass sits at the centre;
4. normalized with the training set's mean and standard deviation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

from .data import MEAN, STD

BOX, SIZE = 20, 28  # the ink fits a 20x20 box inside the 28x28 image


def to_grayscale(image) -> np.ndarray:
    """A path, a PIL image, a numpy array or a tensor as grayscale floats in [0, 1] (H, W)."""
    if isinstance(image, (str, Path)):
        try:
            image = Image.open(image)
            image.load()
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{image} is not an image PIL can read ({err}); give a PNG or JPEG of one digit") from None
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("L"), dtype=np.float32) / 255
    elif isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    else:
        image = np.asarray(image, dtype=np.float32)
    image = np.squeeze(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):  # colour, channels last: average the colours
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected one picture (height x width), got an array of shape {image.shape}")
    if image.max() > 1:  # 0-255 values
        image = image / 255
    return image.astype(np.float32)


def prepare_digit(image) -> torch.Tensor:
    """Any picture of one digit as MNIST would have made it: a normalized (1, 1, 28, 28) tensor."""
    gray = to_grayscale(image)
    if gray.max() - gray.min() < 0.1:
        raise ValueError("the picture is all one colour: no ink to read; write a dark digit on a light page "
                         "(or a light one on a dark page)")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    ink = 1 - gray if np.median(border) > 0.5 else gray  # a light page: turn it into light ink on dark
    background = np.median(np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]]))
    ink = np.clip((ink - background) / (ink.max() - background), 0, 1)  # the page 0, the darkest ink 1
    rows, cols = np.nonzero(ink > 0.2)  # the ink's bounding box (faint noise left out)
    box = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = BOX / max(box.shape)
    height, width = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    small = np.asarray(Image.fromarray((box * 255).astype(np.uint8)).resize((width, height), Image.LANCZOS),
                       dtype=np.float32) / 255  # anti-aliased, as MNIST's were
    y, x = np.indices(small.shape)
    mass = small.sum()
    top = int(round(SIZE / 2 - (y * small).sum() / mass - 0.5))  # the centre of mass goes to pixel 13.5
    left = int(round(SIZE / 2 - (x * small).sum() / mass - 0.5))
    top, left = min(max(top, 0), SIZE - height), min(max(left, 0), SIZE - width)
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    canvas[top:top + height, left:left + width] = small
    return ((torch.from_numpy(canvas) - MEAN) / STD).reshape(1, 1, SIZE, SIZE)


@torch.no_grad()
def read_digit(model: torch.nn.Module, image) -> tuple[torch.Tensor, torch.Tensor]:
    """(the prepared 28x28 image, the ten probabilities the model gives it)."""
    prepared = prepare_digit(image)
    model.eval()
    logits = model(prepared.to(next(model.parameters()).device))
    return prepared, torch.softmax(logits, dim=1)[0].cpu()


def draw_digit(strokes: list[list[tuple[float, float]]], size: int = 200, width: int = 14) -> Image.Image:
    """A digit drawn as pen strokes (points in [0, 1], x right, y down) in black on a white page: what a
    photo of handwriting looks like before ``prepare_digit``."""
    page = Image.new("L", (size, size), 255)
    pen = ImageDraw.Draw(page)
    for stroke in strokes:
        pen.line([(x * size, y * size) for x, y in stroke], fill=0, width=width, joint="curve")
    return page
