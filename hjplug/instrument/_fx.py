"""FX-converted models (`hjplug.convert` → HJModule): statistics through the HJStep hook points.

Statistics that need no full π (ε, lse, entropy, gap, top-k) come from each HJAttentionStep's
"stats" point: the step then runs `hjplug.kernels.hj_attention` (fused Triton on CUDA, the
blockwise reference elsewhere; no [Tq, Tk] scores). "curvature" and "weights" need π: the step's
"scores" point (logits z = q·kᵀ/ε + (ε₀/ε)·b, −inf = removed key; explicit matmul /
softmax), with a forward pre-hook keeping k for the curvature. HJLSEStep readouts emit
"logits" (before /ε).
Steps whose chain is replayed (reshapes / fused bias: `deform_core`) emit the replay's softmax
input as scores and statistics from it (the explicit path, named in the recorder's notes).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.instrument.recorder import Recorder
from hjplug.instrument.stats import (
    covariance_norm,
    empty_undefined,
    gap_from_topk,
    logits_stats,
    nan_flags,
    normalized,
)
from hjplug.modules.attention_stats import explicit_stats, removed_to_inf
from hjplug.modules.base import tropical_softmax

__all__ = ["attach_fx", "attention_steps", "is_fx", "lse_steps", "recurrent_steps"]


def is_fx(model: object) -> bool:
    from hjplug.modules import HJModule

    return isinstance(model, HJModule)


def _ordered(model: Any, cls: type) -> list[tuple[str, Any]]:
    steps = model.steps
    order = [s.path for s in model.specs()]
    return [(p, steps[p]) for p in order if p in steps and isinstance(steps[p], cls)]


def attention_steps(model: Any) -> list[tuple[str, Any]]:
    """(path, HJAttentionStep) in graph order: index i ↦ "layers.{i}.attn"."""
    from hjplug.modules import HJAttentionStep

    return _ordered(model, HJAttentionStep)


def lse_steps(model: Any) -> list[tuple[str, Any]]:
    from hjplug.modules import HJLSEStep

    return _ordered(model, HJLSEStep)


def recurrent_steps(model: Any) -> list[tuple[str, Any]]:
    """(path, HJRecurrentStep) in graph order: index i ↦ "gates.{i}"."""
    from hjplug.modules import HJRecurrentStep

    return _ordered(model, HJRecurrentStep)


def _gate_hook(rec: Recorder, i: int, path: str) -> Callable[..., None]:
    """Forward hook of a recurrent step: the σ gates of a fused one-layer LSTM / GRU call, or of
    one aten.lstm_cell / gru_cell call, as 2-atom Gibbs weights of {z/ε, 0} (z recomputed from
    the call's inputs and weights); other layouts (and ε = 0) only noted."""
    from hjplug.instrument._readouts import _note_not_instrumented, fused_gate_preacts, gate_stats

    def hook(step: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        eps = float(step.epsilon)
        if kwargs.get("gate") is not None or eps <= 0:
            _note_not_instrumented(rec, i, path, "hand-written cell" if eps > 0 else
                                   "hard gates at ε = 0")
            return
        op = str(step.spec.notes)
        if op in ("rnn_tanh_cell", "rnn_relu_cell"):
            _note_not_instrumented(rec, i, path, "RNN cell: no σ gate")
            return
        with torch.no_grad():
            pre = fused_gate_preacts(op, args, output)
            if pre is None:
                _note_not_instrumented(rec, i, path)
                return
            for gate, z in pre.items():
                vals = gate_stats(z.detach() / eps)
                vals["epsilon"] = torch.full((1,), eps)
                vals["value"] = eps * vals["lse"]
                rec.put(f"gates.{i}.{gate}", path, "gate", vals)
    return hook


def _eps_vector(step: Any, H: int, like: Tensor, identified: bool = False) -> Tensor:
    """The step's ε (or its identified ε₀) per head [H]."""
    e = step.identified_epsilon if identified else step.epsilon
    vals = list(e) if isinstance(e, tuple) else [float(e)] * H
    return torch.tensor(vals[:H] if len(vals) >= H else vals * H, dtype=torch.float32,
                        device=like.device)


def _per_batch(step: Any) -> int | None:
    """H of a step whose tensors are 3-D [B·H, S, d] (the rule's `heads_per_batch`), so its
    statistics [1, B·H, Sq] are recorded as [B, H, Sq] and its ε as [H]; None otherwise, or
    when its ε is a per-slice tuple rather than one ε per head (the step tiles an H-tuple over
    the batch: ε_{b·H+h} = ε_h, as `hjplug.deform(..., heads=...)` sets it)."""
    h = step.spec.hamiltonian.params.get("heads_per_batch")
    if not isinstance(h, int) or isinstance(h, bool) or h <= 0:
        return None
    e = step.epsilon
    return None if isinstance(e, tuple) and len(e) != h else h


def _split(t: Tensor | None, h: int | None) -> Tensor | None:
    """[1, B·H, ...] → [B, H, ...] (h = H); unchanged when h is None."""
    if t is None or h is None or t.dim() < 2 or t.shape[0] != 1 or t.shape[1] % h:
        return t
    return t.reshape(t.shape[1] // h, h, *t.shape[2:])


def _value(step: Any, eps: Tensor, lse: Tensor, zmax: Tensor | None) -> Tensor:
    """HJ value ε·lse [B, H, Sq]; at ε = 0 its limit ε₀·max_j z₀ (lse diverges there)."""
    H = lse.shape[-2]
    e = eps.view(1, H, 1).to(lse.dtype)
    if zmax is None or bool((e > 0).all()):
        return e * lse
    e0 = _eps_vector(step, H, lse, identified=True).view(1, H, 1).to(lse.dtype)
    return torch.where(e > 0, e * lse, e0 * zmax.to(lse.dtype))


def _attention_cb(rec: Recorder, prefix: str, path: str, cell: dict[str, Tensor]
                  ) -> Callable[[Any, str, Tensor], None]:
    def cb(step: Any, point: str, z: Tensor) -> None:
        if rec.grad and not getattr(cb, "noted", False):
            cb.noted = True  # type: ignore[attr-defined]
            rec.notes.append(f"{prefix} ({path}): statistics from the step's logits are "
                             "recorded detached (grad=True covers kernel-path statistics)")
        with torch.no_grad():
            z4 = removed_to_inf(z.detach()).reshape(-1, *z.shape[-3:])  # [B, H, Tq, Tk]
            z4 = _split(z4, _per_batch(step)) if z.dim() == 3 else z4  # type: ignore[assignment]
            B, H, Tq, Tk = z4.shape
            need_top = max(rec.topk if "topk" in rec.stats else 0, 2 if "gap" in rec.stats else 0)
            eps = _eps_vector(step, H, z4)
            tropical = bool((eps <= 0).all())  # z is z₀ = s/ε₀ + b, π its hard max
            if tropical:
                st = explicit_stats(z4, 0.0, need_top, "")
                ent = empty_undefined(st.entropy, st.keys)  # k = 0: no distribution
                vals = {"lse": st.lse, "entropy": ent, "keys": st.keys,
                        "normalized_entropy": normalized(ent, st.keys),
                        "nan": (st.keys > 0) & torch.isnan(ent)}
                if need_top and st.topk_weights is not None and st.topk_indices is not None:
                    vals["topk_weights"], vals["topk_indices"] = st.topk_weights, st.topk_indices
            else:
                vals = logits_stats(z4, need_top)
            vals["epsilon"] = eps
            vals["value"] = _value(step, eps, vals["lse"], st.zmax if tropical else None)
            if need_top:
                tw = vals["topk_weights"]
                vals["gap"], vals["gap_ratio"] = gap_from_topk(tw, vals["keys"])
                vals["topk_weights"] = tw[..., :rec.topk]
                vals["topk_indices"] = vals["topk_indices"][..., :rec.topk]
            p = None
            if {"weights", "curvature"} & set(rec.stats):
                p = tropical_softmax(z4.float()) if tropical else _softmax(z4)  # [B, H, Tq, Tk]
            if "weights" in rec.stats and p is not None:
                vals["weights"] = p
            if "curvature" in rec.stats and "k" in cell and p is not None:
                k = cell["k"]
                k = k.transpose(-1, -2) if step.mode != "sdpa" else k  # eager steps take kᵀ
                k = k.reshape(-1, *k.shape[-3:])  # [B, Hk, Tk, D]
                k = _split(k, _per_batch(step)) if cell["k"].dim() == 3 else k  # type: ignore[assignment]
                if k.shape[1] != H:
                    k = k.repeat_interleave(H // k.shape[1], dim=1)
                k = k.expand(B, H, Tk, k.shape[-1])
                curv, bound = covariance_norm(p.reshape(B * H, Tq, Tk), k.reshape(B * H, Tk, -1),
                                              (z4 > float("-inf")).reshape(B * H, Tq, Tk),
                                              eps.repeat(B))
                vals["curvature"], vals["curvature_bound"] = (curv.reshape(B, H, Tq),
                                                              bound.reshape(B, H, Tq))
        rec.put(prefix, path, "attention", vals)
    return cb


_STAT_FIELDS = ("lse", "entropy", "keys", "topk_weights", "topk_indices", "zmax")


def _stats_cb(rec: Recorder, prefix: str, path: str, need_top: int
              ) -> Callable[[Any, str, Any], None]:
    """Recorder entries from an AttentionStepStats (the kernel's outputs, or the explicit ones)."""
    seen: set[str] = set()

    def cb(step: Any, point: str, st: Any) -> None:
        with torch.set_grad_enabled(rec.grad and torch.is_grad_enabled()):
            h = _per_batch(step)
            st = replace(st, **{f: _split(getattr(st, f), h) for f in _STAT_FIELDS})
            keep = (lambda t: t) if rec.grad else (lambda t: t.detach())
            lse, keys = keep(st.lse), st.keys
            ent = empty_undefined(keep(st.entropy), keys)  # k = 0: no distribution
            H = lse.shape[-2]
            eps = _eps_vector(step, H, lse)
            vals = {"lse": lse, "entropy": ent, "normalized_entropy": normalized(ent, keys),
                    "keys": keys, "nan": nan_flags(lse, ent, keys), "epsilon": eps,
                    "value": _value(step, eps, lse, st.zmax)}
            if need_top and st.topk_weights is not None:
                tw, ti = keep(st.topk_weights), st.topk_indices
                with torch.no_grad():
                    vals["gap"], vals["gap_ratio"] = gap_from_topk(tw.detach(), keys)
                vals["topk_weights"], vals["topk_indices"] = tw[..., :rec.topk], ti[..., :rec.topk]
        if st.backend not in seen:
            seen.add(st.backend)
            why = f" ({st.reason})" if st.reason else ""
            rec.notes.append(f"{prefix} ({path}): statistics from the {st.backend} path{why}")
        rec.put(prefix, path, "attention", vals)
    return cb


def _softmax(z: Tensor) -> Tensor:
    """π = softmax(z) in fp32; rows with no visible key → 0 (never uniform over removed keys)."""
    zf = z.float()
    empty = ~(zf > float("-inf")).any(-1, keepdim=True)
    return torch.softmax(zf.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)


def _lse_cb(rec: Recorder, prefix: str, path: str) -> Callable[[Any, str, Tensor], None]:
    from hjplug.instrument._readouts import readout_stats

    def cb(step: Any, point: str, z: Tensor) -> None:
        eps = float(step.epsilon)
        if eps <= 0:
            return
        zz = z.detach()
        if step.dim not in (-1, zz.dim() - 1):
            zz = zz.movedim(step.dim, -1)
        with torch.no_grad():
            vals = readout_stats(zz / eps, None, rec.stats, rec.topk)
            vals["epsilon"] = torch.full((1,), eps)
            vals["value"] = eps * vals["lse"]
        rec.put(prefix, path, "readout", vals)
    return cb


def attach_fx(model: nn.Module, rec: Recorder, stack: ExitStack, readouts: bool) -> None:
    for i, (path, step) in enumerate(attention_steps(model)):
        if not {"weights", "curvature"} & set(rec.stats):  # no π needed: the kernel path
            need_top = max(rec.topk if "topk" in rec.stats else 0, 2 if "gap" in rec.stats else 0)
            handle = step.observe_stats(_stats_cb(rec, f"layers.{i}.attn", path, need_top),
                                        topk=need_top)
            stack.callback(handle.remove)
            continue
        cell: dict[str, Tensor] = {}

        def pre(m: nn.Module, args: tuple[Any, ...], cell: dict[str, Tensor] = cell) -> None:
            cell["k"] = args[1].detach()
        if "curvature" in rec.stats:
            stack.callback(step.register_forward_pre_hook(pre).remove)
        stack.callback(step.observe("scores", _attention_cb(rec, f"layers.{i}.attn", path,
                                                            cell)).remove)
    if readouts:
        for j, (path, step) in enumerate(lse_steps(model)):
            stack.callback(step.observe("logits", _lse_cb(rec, f"readout.lse{j}", path)).remove)
            if step.spec.exactness == "structural":  # softmax over attention scores (rule lse)
                note = (f"readout.lse{j} ({path}): a softmax over attention scores the attention "
                        "rule did not read (structural, see its record), not a readout of a "
                        "linear layer; statistics per key row [..., Sq]")
                if note not in rec.notes:
                    rec.notes.append(note)
        for j, (path, step) in enumerate(recurrent_steps(model)):
            hook = step.register_forward_hook(_gate_hook(rec, j, path), with_kwargs=True)
            stack.callback(hook.remove)
