"""Installing helpers the two other ways a learner does: `pip install .` (not editable) and Colab's setup cell.

Each test makes a fresh virtual environment that sees this environment's
packages (torch included) through a .pth line, as Colab's Python already has
torch, and installs with the package index switched off: nothing is downloaded.
"""

import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tools import journey

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="venv layout and git plumbing of POSIX systems")


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture
def python_with_torch(tmp_path) -> Path:
    """A new venv's python, with torch and the rest importable from this environment but not installed in it."""
    venv = tmp_path / "venv"
    run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)])  # pip, too, comes from here
    python = venv / "bin" / "python"
    own = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (own / "preinstalled.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def offline_pip_env(**extra) -> dict:
    # No index: nothing may be downloaded. PIP_NO_BUILD_ISOLATION=0 is pip's (inverted) spelling of
    # --no-build-isolation: build with the setuptools already present.
    env = {k: v for k, v in os.environ.items() if k not in ("MNIST8K_ROOT", "PYTHONPATH")}
    return env | {"PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"} | extra


def copy_of_the_working_tree(dest: Path) -> Path:
    """The files git would commit (tracked and new, not ignored), as they are now."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=journey.ROOT).stdout.split("\0")
    for name in filter(None, listed):
        if (journey.ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(journey.ROOT / name, dest / name)
    return dest


SMOKE_RUN = textwrap.dedent("""
    import sys, torch
    from torch import nn
    import helpers
    from helpers import Config, fit, save_run, set_seed
    set_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    history = fit(model, Config(epochs=1, optimizer="adam", lr=0.01), progress=False)
    save_run(model, history, "99_install_check")
    print("HELPERS", helpers.__file__)
    print("TORCH", torch.__file__)
""")


@pytest.mark.slow
def test_a_non_editable_install_writes_to_the_project_not_to_site_packages(python_with_torch, tmp_path, mnist_root):
    source = copy_of_the_working_tree(tmp_path / "source")
    run([str(python_with_torch), "-m", "pip", "install", "-q", str(source)], env=offline_pip_env())
    project = tmp_path / "my-project"
    shutil.copy(source / "pyproject.toml", project.mkdir() or project / "pyproject.toml")
    (project / "notebooks").mkdir()
    # A real run (not smoke mode, whose records go to a temporary folder), on the data already here.
    env = offline_pip_env(MNIST8K_SMOKE="0", MNIST8K_DATA=str(mnist_root))
    out = run([str(python_with_torch), "-c", SMOKE_RUN.replace("epochs=1", "epochs=1, batch_size=6000")],
              cwd=project / "notebooks", env=env).stdout
    installed = Path(out.split("HELPERS ")[1].split()[0])
    assert "site-packages" in installed.parts and source not in installed.parents, installed
    assert (project / "results" / "99_install_check.json").is_file()
    assert (project / "models" / "99_install_check.pt").is_file()
    assert not list(installed.parent.parent.glob("results")), "nothing written beside the installed package"


@pytest.mark.slow
def test_the_colab_setup_cell_installs_helpers_and_keeps_colabs_torch(python_with_torch, tmp_path, mnist_root):
    # The repository address, pointed at a local bare clone of the working tree.
    tree = copy_of_the_working_tree(tmp_path / "tree")
    run(["git", "init", "-q", "-b", "main"], cwd=tree)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], cwd=tree)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tree"], cwd=tree)
    bare = tmp_path / "bare.git"
    run(["git", "clone", "-q", "--bare", str(tree), str(bare)])
    # Colab: a google.colab module exists; the notebook runs in /content (here: a new folder).
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    content = tmp_path / "content"
    content.mkdir()
    cell = journey.setup_source()
    script = "import google.colab\n" + cell + "\n" + SMOKE_RUN
    env = offline_pip_env(PYTHONPATH=str(fake), MNIST8K_SMOKE="1", MNIST8K_DATA=str(mnist_root),
                          GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"url.file://{bare}.insteadOf",
                          GIT_CONFIG_VALUE_0=f"https://github.com/{journey.repository()}")
    before = run([str(python_with_torch), "-c", "import torch; print(torch.__file__, torch.__version__)"]).stdout
    out = run([str(python_with_torch), "-c", script], cwd=content, env=env).stdout
    assert (content / "mnist-under-8k" / "helpers" / "train.py").is_file(), "the cell cloned the repository"
    assert Path(out.split("HELPERS ")[1].split()[0]).is_relative_to(content / "mnist-under-8k")
    assert "SMOKE MODE" in out and "Saved results/99_install_check.json" in out
    after = run([str(python_with_torch), "-c", "import torch; print(torch.__file__, torch.__version__)"]).stdout
    assert after == before, "torch was reinstalled"
    own = Path(run([str(python_with_torch), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
               .stdout.strip())
    assert not list(own.glob("torch*")), "pip put a torch into the environment"
    assert list(own.glob("*mnist_under_8k*")), "pip installed helpers"
