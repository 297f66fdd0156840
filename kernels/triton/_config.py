"""Shared launch helpers: interpreter detection and the autotune config lists (kept small)."""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["cdiv", "interpreting", "next_pow2", "num_sms"]


def cdiv(a: int, b: int) -> int:
    """⌈a / b⌉ in plain Python (triton.cdiv is a constexpr function: ~6 µs per host call)."""
    return -(-a // b)


def next_pow2(n: int) -> int:
    """The smallest power of two ≥ n (n ≥ 1), in plain Python."""
    return 1 << (n - 1).bit_length()


def interpreting() -> bool:
    """True under TRITON_INTERPRET=1 (kernels run on CPU tensors; autotune is unavailable)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=8)
def num_sms(device_index: int) -> int:
    if interpreting() or not torch.cuda.is_available():
        return 4
    return torch.cuda.get_device_properties(device_index).multi_processor_count
