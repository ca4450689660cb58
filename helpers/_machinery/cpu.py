"""The CPU: one malloc setting for training on Linux (it changes no number a model computes), and the device in words."""

from __future__ import annotations

import ctypes
import platform


def keep_freed_memory() -> bool:
    """Let the memory of freed tensors be reused instead of handed back to the system (Linux, glibc).

    Every training step frees and re-allocates the same few-MB activations. By
    default glibc's malloc returns blocks that big to the operating system, and
    the next step faults them back in page by page: thousands of page faults per
    step (the malloc row of ``make bench`` shows what that costs an epoch).
    PyTorch's CPU tuning guide fixes this by swapping in jemalloc or tcmalloc;
    two malloc settings do the same without installing anything. Returns
    whether the settings were applied (False on other systems).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    # Blocks up to 32 MiB (glibc's largest allowed) come from the heap, and up to 1 GiB of free heap is kept.
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def describe_device(device) -> str:
    """The device in words, for logs and records: 'cuda (NVIDIA H100 ...)', 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return str(device)
