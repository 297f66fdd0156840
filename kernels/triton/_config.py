"""Shared launch helpers: interpreter detection and the autotune config lists (kept small)."""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["interpreting", "num_sms"]


def interpreting() -> bool:
    """True under TRITON_INTERPRET=1 (kernels run on CPU tensors; autotune is unavailable)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=8)
def num_sms(device_index: int) -> int:
    if interpreting() or not torch.cuda.is_available():
        return 4
    return torch.cuda.get_device_properties(device_index).multi_processor_count
