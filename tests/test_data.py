"""helpers.data: the splits, augmentation on whole batches, the fast loader."""

import pytest
import torch
import torchvision.transforms.functional as TF

from helpers import data
from helpers._machinery import mnist_files
from tools.bench import reference_loader


def test_loaded_splits(mnist_root, full_data):
    X, y = data.load_mnist(True, mnist_root)
    Xt, yt = data.load_mnist(False, mnist_root)
    assert X.shape == (60_000, 28, 28) and Xt.shape == (10_000, 28, 28)
    assert X.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(yt).tolist() == mnist_files.TEST_LABEL_COUNTS
    pixels = X.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical order


def test_smoke_mode_uses_a_small_subset(mnist_root, smoke):
    assert len(data.load_mnist(True, mnist_root)[1]) == data.SMOKE_TRAIN
    assert len(data.load_mnist(False, mnist_root)[1]) == data.SMOKE_TEST


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
    reference = reference_loader(train=False, batch_size=250, root=mnist_root)
    assert len(fast) == len(reference)
    for (Xf, yf), (Xr, yr) in zip(fast, reference):
        assert torch.equal(Xf, Xr) and torch.equal(yf, yr)




def test_make_batch_is_the_fast_loaders_batch(mnist_root, smoke):
    """The one batch-making function: the loader's augmented batch is make_batch with the loader's own draws
    (four uniform numbers per image, in the order angle, x shift, y shift, zoom); at 0.5 each, no change."""
    images, labels = data.load_mnist(True)
    loader = data.FastLoader(images[:64], labels[:64], 64, degrees=30, translate=0.1, scale=0.1, seed=3)
    X_loader, _ = next(iter(loader))
    generator = torch.Generator().manual_seed(3 * 1_000 + 1)  # seed 3, epoch 1
    uniform = torch.stack([torch.rand(64, generator=generator) for _ in range(4)])
    raw = images[:64].unsqueeze(1)
    assert torch.equal(X_loader, data.make_batch(raw, uniform, 30, 0.1, 0.1))
    still = data.make_batch(raw, torch.full((4, 64), 0.5), 30, 0.1, 0.1)
    assert torch.allclose(still, data.make_batch(raw), atol=1e-6)
    assert not torch.allclose(X_loader, still, atol=0.1)
