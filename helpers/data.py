"""MNIST as tensors, and feeding it to a model fast (step 01).

* ``load_mnist`` gives a split as one uint8 image tensor and its labels.
* ``random_affine`` rotates, shifts and zooms a whole batch in one call (step 05).
* ``FastLoader`` keeps a whole split as one uint8 tensor on the training device
  and makes each batch there: shuffle, augment, normalize. Our models are tiny,
  so the usual per-image PIL pipeline, not the model, would set the pace.

Finding, fetching and checking the files is machinery (``helpers._machinery.mnist_files``);
you can skip it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ._machinery import mnist_files
from ._machinery.smoke import SMOKE_ENV, smoke_mode  # noqa: F401  (the test command's quick mode)

MEAN, STD = 0.1307, 0.3081  # over the 60,000 training images, pixels in [0, 1]: normalizing centres the inputs
SMOKE_TRAIN, SMOKE_TEST = 2_000, 1_000  # images in smoke mode


def ensure_mnist(root: str | Path | None = None) -> Path:
    """The folder holding a checked copy of MNIST, fetched if need be (``helpers._machinery.mnist_files``)."""
    return mnist_files.ensure_mnist(root, pixel_stats=(MEAN, STD))


def load_mnist(train: bool, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (uint8 images [N, 28, 28], int64 labels [N]), read by torchvision.

    In smoke mode only the first 2,000 training / 1,000 test images.
    """
    import torchvision

    root = ensure_mnist(root)
    dataset = torchvision.datasets.MNIST(str(root), train=train, download=False)
    images, labels = dataset.data, dataset.targets
    if smoke_mode():
        n = SMOKE_TRAIN if train else SMOKE_TEST
        images, labels = images[:n], labels[:n]
    return images, labels


def affine(X: torch.Tensor, angle: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor,
           zoom: torch.Tensor) -> torch.Tensor:
    """Zoom, rotate (degrees, counter-clockwise) and shift (fractions of the size) each image of X.

    ``X`` is (N, 1, H, W) with pixels in [0, 1]; the other arguments hold one
    value per image. Uncovered pixels become 0, the background, and each output
    pixel copies its nearest input pixel, as torchvision's ``RandomRotation``
    does by default. One ``grid_sample`` call does the whole batch, on
    whatever device X is.
    """
    # affine_grid asks, for every output pixel, where to read in the input:
    # the inverse of "zoom, rotate, then shift". Grid units: the image spans
    # [-1, 1], so a shift of 0.1 of the image is 0.2; y points down.
    radians = torch.deg2rad(angle)
    cos, sin = torch.cos(radians) / zoom, torch.sin(radians) / zoom
    dx, dy = 2 * shift_x, 2 * shift_y
    theta = torch.stack([
        torch.stack([cos, -sin, -(cos * dx - sin * dy)], dim=1),
        torch.stack([sin, cos, -(sin * dx + cos * dy)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    return F.grid_sample(X, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def random_affine(X: torch.Tensor, degrees: float = 0.0, translate: float = 0.0, scale: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of the batch gets its own random rotation, shift and zoom (step 05): angles from [-degrees,
    degrees], x and y shifts from [-translate, translate] (fractions of the size), zooms from [1 - scale, 1 + scale]."""
    return affine_from_uniform(X, draw_uniform(X.shape[0], X.device, generator), degrees, translate, scale)


def draw_uniform(n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """(4, n) numbers in [0, 1): for each image its angle, x shift, y shift and zoom, drawn in that order."""
    return torch.stack([torch.rand(n, device=device, generator=generator) for _ in range(4)])


def affine_from_uniform(X: torch.Tensor, uniform: torch.Tensor, degrees: float, translate: float,
                        scale: float) -> torch.Tensor:
    """``random_affine`` with its random numbers given (``draw_uniform``'s rows; the CUDA graph draws an epoch's ahead)."""
    angle, shift_x, shift_y, zoom = (centre + (2 * u - 1) * half_width for u, half_width, centre in
                                     zip(uniform, (degrees, translate, translate, scale), (0.0, 0.0, 0.0, 1.0)))
    return affine(X, angle, shift_x, shift_y, zoom)


def normalize(X: torch.Tensor) -> torch.Tensor:
    """Same arithmetic as ``transforms.Normalize((MEAN,), (STD,))``, in place."""
    return X.sub_(MEAN).div_(STD)


class FastLoader:
    """Batches of (X, y) made on the device from one resident uint8 tensor.

    Iterates like a ``DataLoader``: ``for X, y in loader`` and ``len(loader)``.
    Every pass draws a fresh shuffle from ``seed`` and the epoch number, so a
    run is repeatable and epochs differ. Images stay uint8 (1 byte a pixel)
    until a batch is made: 60,000 images take 47 MB.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool = False,
                 degrees: float = 0.0, translate: float = 0.0, scale: float = 0.0, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.images = images.to(self.device).unsqueeze(1)  # (N, 1, 28, 28) uint8
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.degrees, self.translate, self.scale = degrees, translate, scale
        self.epoch = 0

    @property
    def augments(self) -> bool:
        return bool(self.degrees or self.translate or self.scale)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def next_epoch(self) -> torch.Generator:
        """Count one more pass and return its random generator: seeded by ``seed`` and the epoch number."""
        self.epoch += 1
        return torch.Generator(device=self.device).manual_seed(self.seed * 1_000 + self.epoch)

    def __iter__(self):
        generator = self.next_epoch()
        n = len(self.labels)
        order = torch.randperm(n, device=self.device, generator=generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                X, y = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                X, y = self.images[index], self.labels[index]
            uniform = draw_uniform(len(y), self.device, generator) if self.augments else None
            yield make_batch(X, uniform, self.degrees, self.translate, self.scale), y


def make_batch(images: torch.Tensor, uniform: torch.Tensor | None = None, degrees: float = 0.0,
               translate: float = 0.0, scale: float = 0.0) -> torch.Tensor:
    """uint8 images (N, 1, 28, 28) -> the float batch a model sees: pixels in [0, 1] (as
    ``transforms.ToTensor``), augmented with the random numbers ``uniform`` if given, normalized."""
    X = images.float().div_(255)
    if uniform is not None:
        X = affine_from_uniform(X, uniform, degrees, translate, scale)
    return normalize(X)
