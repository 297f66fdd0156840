"""hjplug.kernels — fused HJ kernels (import it as hjplug.kernels, never as a top-level package).

    hj_attention(q, k, v, *, scale=None, causal=False, bias=None, window=None, topk=0)
        -> HJAttentionOutput(out, lse, entropy, topk_weights, topk_indices)
    hopf_cole(x, W, b, eps=1.0, *, topk=0) -> HopfColeOutput(value, grad, entropy, ...)
    entropy_sweep(logits, eps, *, q=None, k=None, causal=False) -> entropies [..., K]
    backend_for(op, *tensors, head_dim=None, topk=0) -> BackendChoice (which path would run)

Each call goes through one `torch.library` custom op `hjplug::<op>`; the Triton kernel runs on
CUDA, the PyTorch reference twin elsewhere (override: HJPLUG_KERNEL=auto|reference|triton).
Importing this package loads neither torch nor triton: everything loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hjplug.kernels.records import HJAttentionOutput, HopfColeOutput

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.kernels.api import entropy_sweep as entropy_sweep
    from hjplug.kernels.api import hj_attention as hj_attention
    from hjplug.kernels.api import hopf_cole as hopf_cole
    from hjplug.kernels.registry import BackendChoice as BackendChoice
    from hjplug.kernels.registry import KernelFallbackWarning as KernelFallbackWarning
    from hjplug.kernels.registry import choose as backend_for  # noqa: F401

_LAZY: dict[str, tuple[str, str]] = {
    "hj_attention": ("hjplug.kernels.api", "hj_attention"),
    "hopf_cole": ("hjplug.kernels.api", "hopf_cole"),
    "entropy_sweep": ("hjplug.kernels.api", "entropy_sweep"),
    "backend_for": ("hjplug.kernels.registry", "choose"),
    "BackendChoice": ("hjplug.kernels.registry", "BackendChoice"),
    "KernelFallbackWarning": ("hjplug.kernels.registry", "KernelFallbackWarning"),
}

__all__ = ["HJAttentionOutput", "HopfColeOutput", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hjplug.kernels' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
