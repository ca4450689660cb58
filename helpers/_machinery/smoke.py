"""The test command's quick mode: small data, one epoch, and records kept out of the project."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SMOKE_ENV = "MNIST8K_SMOKE"


def smoke_mode() -> bool:
    """True when the test command asks for a quick run on a small subset (``MNIST8K_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0", "false", "False")


def smoke_folder() -> Path:
    """Where smoke runs write their records instead of the project, so the test command never overwrites one."""
    return Path(tempfile.gettempdir()) / "mnist8k-smoke"
