"""Which implementation runs: the Triton kernel on CUDA when it supports the call, else the
PyTorch reference twin, never a wrong answer.

Override with the environment variable HJPLUG_KERNEL = auto (default) | reference | triton.
`triton` also runs the kernels on CPU tensors when TRITON_INTERPRET=1 (tests). Whenever a call
that would (or was asked to) use Triton falls back, one KernelFallbackWarning per (op, reason)
names the reason. CPU tensors under `auto` use the reference silently: that is no fallback.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError

__all__ = [
    "ENV_VAR",
    "BackendChoice",
    "KernelFallbackWarning",
    "choose",
    "requested_backend",
    "reset_warnings",
    "resolve",
]

ENV_VAR = "HJPLUG_KERNEL"
MODES = ("auto", "reference", "triton")
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_HEAD_DIM = 128
MAX_TOPK = 32
_WARNED: set[tuple[str, str]] = set()


class KernelFallbackWarning(UserWarning):
    """A call that would use a Triton kernel runs on the reference path instead (reason given)."""


@dataclass(frozen=True)
class BackendChoice:
    op: str
    backend: Literal["triton", "reference"]
    reason: str
    fallback: bool  # True when Triton was wanted (CUDA or HJPLUG_KERNEL=triton) but cannot run


def requested_backend() -> str:
    """The HJPLUG_KERNEL setting (auto when unset)."""
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise InvalidArgumentError(ENV_VAR, f"one of {', '.join(MODES)}", mode,
                                   where="hjplug.kernels.registry",
                                   hint=f"unset {ENV_VAR} for automatic dispatch.")
    return mode


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def _unsupported(tensors: tuple[Tensor, ...], head_dim: int | None, topk: int,
                 extra: str | None) -> str | None:
    dev = tensors[0].device
    if any(t.device != dev for t in tensors):
        return "tensors on different devices"
    if tensors[0].dtype not in TRITON_DTYPES:
        return f"dtype {tensors[0].dtype} has no Triton kernel (fp16, bf16, fp32 only)"
    if head_dim is not None and head_dim > MAX_HEAD_DIM:
        return f"head dim {head_dim} > {MAX_HEAD_DIM}"
    if topk > MAX_TOPK:
        return f"topk = {topk} > {MAX_TOPK}"
    return extra


def choose(op: str, *tensors: Tensor, head_dim: int | None = None, topk: int = 0,
           unsupported: str | None = None) -> BackendChoice:
    """Decide without warning. `unsupported` is an op-specific reason the kernel cannot run."""
    mode = requested_backend()
    if mode == "reference":
        return BackendChoice(op, "reference", f"{ENV_VAR}=reference", False)
    dev = tensors[0].device
    on_cuda = dev.type == "cuda"
    if not on_cuda and not (mode == "triton" and dev.type == "cpu" and _interpreting()):
        if mode == "triton":
            return BackendChoice(op, "reference", f"{ENV_VAR}=triton but tensors are on {dev.type}"
                                 " (and TRITON_INTERPRET=1 is not set)", True)
        return BackendChoice(op, "reference", f"tensors on {dev.type}", False)
    if importlib.util.find_spec("triton") is None:
        return BackendChoice(op, "reference", "triton is not installed", True)
    why = _unsupported(tensors, head_dim, topk, unsupported)
    if why is not None:
        return BackendChoice(op, "reference", why, True)
    return BackendChoice(op, "triton", "CUDA" if on_cuda else "TRITON_INTERPRET=1", False)


def resolve(op: str, *tensors: Tensor, head_dim: int | None = None, topk: int = 0,
            unsupported: str | None = None) -> BackendChoice:
    """`choose`, then one KernelFallbackWarning per (op, reason) when it falls back."""
    c = choose(op, *tensors, head_dim=head_dim, topk=topk, unsupported=unsupported)
    if c.fallback and (op, c.reason) not in _WARNED:
        _WARNED.add((op, c.reason))
        warnings.warn(f"hjplug.kernels.{op}: running the PyTorch reference path instead of the "
                      f"Triton kernel: {c.reason}.", KernelFallbackWarning, stacklevel=3)
    return c


def reset_warnings() -> None:
    """Forget which fallbacks were already reported (tests)."""
    _WARNED.clear()
