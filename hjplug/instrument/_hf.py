"""Hugging Face adapter: attention statistics through `record()` (kernel path, O(Sq) memory per
head), q/k-dependent ones (curvature, weights) through `_tap`, readouts through forward hooks.

A model that is not hjplug-enabled is enabled in place for the context and disabled on exit
(its original attention implementation is restored exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.instrument.recorder import Recorder
from hjplug.instrument.stats import covariance_norm, empty_undefined, gap_from_topk, nan_flags

__all__ = ["attach_hf", "ensure_enabled", "is_hf", "visible_keys"]


def is_hf(model: object) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PreTrainedModel)


def ensure_enabled(model: nn.Module, stack: ExitStack) -> None:
    """Enable `model` in place for the life of `stack` (no-op when already enabled)."""
    from hjplug.instrument._tap import repair
    from hjplug.integrations.huggingface import disable, enable, is_enabled, register

    register()
    if not is_enabled(model):
        enable(model, inplace=True)
        stack.callback(disable, model)
    repair()  # register() / enable() re-set the "hjplug" entry: keep active taps working


def visible_keys(call: Any) -> Tensor:
    """[B|1, H|1, Sq, Sk] bool: key j is an atom for query i (mask, padding, causal)."""
    from hjplug.integrations.huggingface.attention_math import visible_mask

    k, _, bias, causal = call.prepared()
    return visible_mask(bias, causal, call.query.shape[2], k.shape[2], k.device)


def nan_rows(lse: Tensor, ent: Tensor, keys: Tensor) -> Tensor:
    """Rows whose statistics are not trustworthy: NaN, or lse = −inf although keys are visible
    (a NaN score that a backend reported as an empty row); rows with no key are empty, not NaN
    (their undefined entropy is NaN by convention, see hjplug.instrument.names)."""
    return nan_flags(lse, ent, keys)


def _on_stats(rec: Recorder) -> Callable[[Any], None]:
    """Callback for integrations.huggingface.record: AttentionStats → recorder tensors."""
    def cb(st: Any) -> None:
        nan = nan_rows(st.lse, st.entropy, st.keys)  # [B, H, Sq]
        vals: dict[str, Tensor] = {
            "epsilon": st.epsilon, "lse": st.lse, "value": st.value, "entropy": st.entropy,
            "normalized_entropy": st.normalized_entropy, "keys": st.keys, "nan": nan}
        if st.topk_weights is not None:
            vals["topk_weights"] = st.topk_weights[..., :rec.topk]
            vals["topk_indices"] = st.topk_indices[..., :rec.topk]
            if st.topk_weights.shape[-1] >= 2:
                vals["gap"], vals["gap_ratio"] = gap_from_topk(st.topk_weights, st.keys)
        rec.put(f"layers.{st.index}.attn", st.path, "attention", vals)
    cb.wants_grad = rec.grad  # type: ignore[attr-defined]  # read by the integration
    return cb


def _on_call(rec: Recorder, prefix: str, path: str) -> Callable[[Any], None]:
    """Tap callback: the full π (weights) and the curvature ‖Cov_π(k)‖/ε with its bound."""
    def cb(call: Any) -> None:
        p, _, _, _ = call.gibbs()  # π [B, H, Sq, Sk] at the module's current λ
        vals: dict[str, Tensor] = {}
        if "weights" in rec.stats:
            vals["weights"] = p
        if "curvature" in rec.stats:
            B, H, Sq, Sk = p.shape
            atoms = call.keys_per_head()  # [B, H, Sk, D]
            vis = visible_keys(call).expand(B, H, Sq, Sk)
            eps = call.epsilon(call.lam()).repeat(B)  # [B·H], b-major like the reshape below
            curv, bound = covariance_norm(p.reshape(B * H, Sq, Sk).float(),
                                          atoms.reshape(B * H, Sk, -1), vis.reshape(B * H, Sq, Sk),
                                          eps)
            vals["curvature"] = curv.reshape(B, H, Sq)
            vals["curvature_bound"] = bound.reshape(B, H, Sq)
        rec.put(prefix, path, "attention", vals)
    return cb


def _on_call_stats(rec: Recorder, prefix: str, path: str, need_top: int
                   ) -> Callable[[Any], None]:
    """Tap callback of the statistics pass (CPU): lse, H, H/log k, gap, top-k, per call."""
    from hjplug.instrument._fast import attention_stats
    from hjplug.instrument.stats import normalized

    def cb(call: Any) -> None:
        st = attention_stats(call, need_top)
        smax: Tensor | None = None
        if st is None:  # tropical or soft-capped heads: the integration's readable eager path
            st, smax = _eager_stats(call, need_top)
        st["entropy"] = empty_undefined(st["entropy"], st["keys"])  # k = 0: no distribution
        eps = call.epsilon(call.lam()).to(st["lse"].dtype)  # [H]
        e = eps.view(1, -1, 1)
        value = e * st["lse"]  # [B, H, Sq]
        if smax is not None:  # tropical heads (ε_h = 0): value = max_j s_ij / scaling
            value = torch.where(e > 0, value, smax.to(value.dtype) / call.scale)
        vals: dict[str, Tensor] = {
            "epsilon": eps, "lse": st["lse"], "entropy": st["entropy"], "keys": st["keys"],
            "value": value,
            "normalized_entropy": normalized(st["entropy"], st["keys"]),
            "nan": nan_rows(st["lse"], st["entropy"], st["keys"])}
        if "topk_weights" in st:
            tw = st["topk_weights"]
            vals["topk_weights"] = tw[..., :rec.topk]
            vals["topk_indices"] = st["topk_indices"][..., :rec.topk]
            if tw.shape[-1] >= 2:
                vals["gap"], vals["gap_ratio"] = gap_from_topk(tw, st["keys"])
        rec.put(prefix, path, "attention", vals)
    return cb


def _eager_stats(call: Any, need_top: int) -> tuple[dict[str, Tensor], Tensor]:
    """lse, entropy, keys (+ top-k) [B, H, Sq] and max_j s_ij by the integration's readable eager
    path (tropical / soft-capped heads), in fp32 at least and in fp64 for fp64 models (π is not
    rounded to the model's dtype before its top-k weights are taken)."""
    from hjplug.integrations.huggingface.attention_math import eager_attention, topk_weights

    k, v, bias, causal = call.prepared()
    q = call.query
    ct = torch.float64 if q.dtype == torch.float64 else torch.float32
    _, lse, ent, keys, p, smax = eager_attention(q.to(ct), k.to(ct), v.to(ct), bias, call.scale,
                                                 causal, call.lam(), call.softcap, 0.0)
    st = {"lse": lse, "entropy": ent, "keys": keys}
    if need_top:
        st["topk_weights"], st["topk_indices"] = topk_weights(p, need_top)
    return st, smax


def _both(*fns: Callable[[Any], None]) -> Callable[[Any], None]:
    def cb(call: Any) -> None:
        for fn in fns:
            fn(call)
    return cb


def choose_backend(model: nn.Module, backend: str) -> str:
    """"kernel" (record(): fused Triton on CUDA, blockwise reference elsewhere) or "stats" (stock
    SDPA output + the statistics-only pass of _fast, the faster choice on CPU)."""
    if backend != "auto":
        return backend
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    return "kernel" if dev.type == "cuda" else "stats"


def attach_hf(model: nn.Module, rec: Recorder, stack: ExitStack, readouts: bool,
              backend: str = "auto") -> None:
    """Register everything `rec.stats` needs on `model` for the life of `stack`."""
    from hjplug.instrument._readouts import attach_readouts
    from hjplug.instrument._tap import tap
    from hjplug.integrations.huggingface import record
    from hjplug.integrations.huggingface.blocks import attention_blocks

    ensure_enabled(model, stack)
    need_top = max(rec.topk if "topk" in rec.stats else 0, 2 if "gap" in rec.stats else 0)
    which = choose_backend(model, backend)
    rec.notes.append(f"attention statistics backend: {which}")
    extra = bool({"curvature", "weights"} & set(rec.stats))
    fns: dict[nn.Module, Callable[[Any], None]] = {}
    for i, (path, mod, _) in enumerate(attention_blocks(model)):
        parts = []
        if which == "stats":
            parts.append(_on_call_stats(rec, f"layers.{i}.attn", path, need_top))
        if extra:
            parts.append(_on_call(rec, f"layers.{i}.attn", path))
        if parts:
            fns[mod] = parts[0] if len(parts) == 1 else _both(*parts)
    if which == "kernel":
        stack.enter_context(record(model, _on_stats(rec), topk=need_top))
    if fns:
        stack.enter_context(tap(fns))
    if readouts:
        attach_readouts(model, rec, stack)
