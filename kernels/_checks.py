"""Argument validation for the kernel ops: InvalidArgumentError naming what was expected and got."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError

__all__ = [
    "check_attention",
    "check_eps_values",
    "check_hopf_cole",
    "stats_dtype",
]


def stats_dtype(dtype: torch.dtype) -> torch.dtype:
    """Statistics (lse, entropy, weights) are at least float32: fp16/bf16 → fp32, fp64 stays."""
    return torch.promote_types(dtype, torch.float32)


def _positive_float(name: str, value: float, where: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value <= 0:
        hint = ("ε > 0 is the viscosity / temperature; scale = 1/ε." if name == "scale" else
                "ε > 0 is the viscosity (softmax temperature); ε → 0 is the hard max.")
        raise InvalidArgumentError(name, "a finite number > 0", value, where=where, hint=hint)
    return float(value)


def check_attention(
    q: Tensor, k: Tensor, v: Tensor, scale: float | None, bias: Tensor | None,
    window: int | None, topk: int, where: str = "hjplug.kernels.hj_attention",
) -> tuple[float, int]:
    """Validate hj_attention arguments; return (scale, window or −1)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            raise InvalidArgumentError(name, "a 4-D tensor [B, H, S, D]", t, where=where)
        if not t.is_floating_point():
            raise InvalidArgumentError(name, "a floating-point tensor", t, where=where)
    B, H, _, D = q.shape
    if H == 0:
        raise InvalidArgumentError("q", "at least one head (H ≥ 1)", q, where=where)
    if k.shape[0] != B or k.shape[-1] != D:
        raise InvalidArgumentError("k", f"[B={B}, Hk, Sk, D={D}] matching q", k, where=where)
    if v.shape[:3] != k.shape[:3]:
        raise InvalidArgumentError("v", f"[{', '.join(map(str, k.shape[:3]))}, Dv] like k", v,
                                   where=where)
    if k.shape[1] == 0 or H % k.shape[1] != 0:
        raise InvalidArgumentError(
            "k", f"a head count dividing q's H = {H} (grouped-query attention)", k, where=where)
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise InvalidArgumentError("k, v", f"the dtype of q ({q.dtype})", f"{k.dtype}/{v.dtype}",
                                   where=where)
    if q.device != k.device or q.device != v.device:
        raise InvalidArgumentError("k, v", f"tensors on q's device ({q.device})",
                                   f"{k.device}/{v.device}", where=where)
    scale_f = 1.0 / math.sqrt(D) if scale is None else _positive_float("scale", scale, where)
    if bias is not None:
        if not isinstance(bias, Tensor) or not (bias.is_floating_point() or
                                                bias.dtype == torch.bool):
            raise InvalidArgumentError("bias", "a float (additive) or bool (keep) tensor", bias,
                                       where=where)
        target = (B, H, q.shape[2], k.shape[2])
        try:
            ok = torch.broadcast_shapes(bias.shape, target) == torch.Size(target)
        except RuntimeError:
            ok = False
        if not ok or bias.dim() > 4:
            raise InvalidArgumentError("bias", f"broadcastable to [B, H, Sq, Sk] = {list(target)}",
                                       bias, where=where)
        if bias.device != q.device:
            raise InvalidArgumentError("bias", f"a tensor on {q.device}", bias, where=where)
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1):
        raise InvalidArgumentError("window", "None or an int ≥ 1 (keys per side)", window,
                                   where=where)
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
        raise InvalidArgumentError("topk", "an int ≥ 0", topk, where=where)
    return scale_f, (-1 if window is None else window)


def check_hopf_cole(x: Tensor, W: Tensor, b: Tensor, eps: float, topk: int,
                    where: str = "hjplug.kernels.hopf_cole") -> float:
    """Validate hopf_cole arguments: x [M, d], W [N, d], b [N], ε > 0; return ε."""
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise InvalidArgumentError("x", "a floating-point 2-D tensor [M, d]", x, where=where)
    if not isinstance(W, Tensor) or W.dim() != 2 or W.shape[1] != x.shape[1]:
        raise InvalidArgumentError("W", f"a 2-D tensor [N, d={x.shape[1]}]", W, where=where)
    if not isinstance(b, Tensor) or b.shape != (W.shape[0],):
        raise InvalidArgumentError("b", f"a 1-D tensor [N={W.shape[0]}]", b, where=where)
    if W.dtype != x.dtype or W.device != x.device:
        raise InvalidArgumentError("W", f"dtype {x.dtype} on {x.device} like x", W, where=where)
    if not b.is_floating_point() or b.device != x.device:
        raise InvalidArgumentError("b", f"a floating-point tensor on {x.device} like x", b,
                                   where=where)
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
        raise InvalidArgumentError("topk", "an int ≥ 0", topk, where=where)
    return _positive_float("eps", eps, where)


def check_eps_values(eps: Tensor | Sequence[float] | float,
                     where: str = "hjplug.kernels.entropy_sweep") -> list[float]:
    """Return the K values of ε as Python floats, each finite and > 0 (one number counts as
    K = 1). A list needs no tensor op, so it works at capture time; a traced tensor cannot."""
    vals: list[Any] = []
    if isinstance(eps, Tensor):
        try:
            vals = eps.detach().cpu().reshape(-1).tolist()
        except Exception:  # a fake / symbolic tensor under torch.export or torch.compile
            raise InvalidArgumentError(
                "eps", "concrete values (a list of floats, or a tensor outside capture)",
                "a tensor without values (traced by torch.export / torch.compile)", where=where,
                hint="the K values of ε are fixed per call; pass them as a Python list.",
            ) from None
    elif isinstance(eps, int | float) and not isinstance(eps, bool):
        vals = [eps]  # one ε
    elif not isinstance(eps, str | bytes):
        try:
            vals = list(eps)  # type: ignore[arg-type]  # any iterable a user passes
        except TypeError:
            vals = []
    try:
        out = [float(e) for e in vals if not isinstance(e, bool | str | bytes)]
        if len(out) != len(vals):
            out = []
    except (TypeError, ValueError):
        out = []
    if not out or not all(math.isfinite(e) and e > 0 for e in out):
        raise InvalidArgumentError("eps", "a non-empty list of finite values > 0", eps,
                                   where=where)
    return out
