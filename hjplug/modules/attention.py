"""HJAttentionStep: one attention head group as an LSE / Gibbs step.

    out_i = Σ_j π_ij v_j,   π_i = softmax(q_i·k_j/ε + (ε₀/ε)·b_ij),   ε₀ = 1/scale (√d_head)

With W_j = M x_j (M = W_Q W_Kᵀ) this is the gradient of LSE_ε in the query: exact (paper-notes §4).
A query the model pre-scales (q = q_proj(x)·s₀, OPT / Whisper) is read in q_proj(x)'s units:
the step's ε is 1/(s₀·scale) (√d_head there), and it evaluates q·k/(s₀·ε), the same logits.
The model's own bias b (mask, ALiBi, relative position) is part of the atoms' initial data
ε₀·b, so a deformed ε rescales the whole logit vector: z = z₀·ε₀/ε, a softmax temperature
(attention_bias.py; the Hugging Face path does the same). ε = 0 gives hard-max attention:
uniform over the argmax keys of z₀ = s/ε₀ + b; masked keys (b = −∞) stay removed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, fx

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.modules.attention_bias import is_removed, scale_bias
from hjplug.modules.attention_stats import (
    AttentionStepStats,
    KernelCall,
    causal_mask,
    empty_undefined,
    explicit_stats,
    kernel_call,
    removed_to_inf,
    visible_keys,
    warn_fallback,
)
from hjplug.modules.base import HJStep, _Handle, tropical_softmax
from hjplug.spec import HJSpec

__all__ = ["HJAttentionStep", "gibbs_attention"]

_REPLAYED = "reshaped / fused chain, replayed explicitly"  # why a replayed step has no kernel


def gibbs_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    eps: float,
    *,
    mask: Tensor | None = None,
    biases: tuple[Tensor, ...] = (),
    causal: bool = False,
    k_transposed: bool = False,
    emit: Any = None,
    bias_gain: float | Tensor = 1.0,
    eps0: float | None = None,
) -> Tensor:
    """Explicit evaluation. q: (..., H, Tq, d); k: (..., Hk, Tk, d) or kᵀ; v: (..., Hk, Tk, dv).

    Logits z = s/ε + bias_gain·b (bias_gain = ε₀/ε, a float or one per head [H]: the paper's
    convention, see attention_bias.py). ε = 0: the hard max of z₀ = s/ε₀ + b (`eps0` = ε₀;
    without it, of s alone).
    """
    kt = k if k_transposed else k.transpose(-2, -1)  # (..., Hk, d, Tk)
    if q.dim() >= 3 and kt.dim() >= 3 and q.shape[-3] != kt.shape[-3]:  # grouped-query attention
        rep = q.shape[-3] // kt.shape[-3]
        kt = kt.repeat_interleave(rep, dim=-3)
        v = v.repeat_interleave(rep, dim=-3)
    s = torch.matmul(q, kt)  # (..., H, Tq, Tk)
    tropical = eps <= 0
    logits = (s / eps0 if eps0 else s) if tropical else s / eps
    removed = torch.zeros((), dtype=torch.bool, device=s.device)
    for b in (*biases, *(() if mask is None else (mask,))):
        if b.dtype == torch.bool:
            removed = removed | ~b
        elif tropical:  # removed atoms drop; finite biases count in z₀ (when ε₀ is known)
            gone = is_removed(b)
            removed = removed | gone
            if eps0:
                logits = logits + b.masked_fill(gone, 0.0)
        else:  # stand-ins (finfo.min) are added unscaled, exactly as the model adds them
            logits = logits + scale_bias(b, bias_gain)
    if causal:  # SDPA's is_causal: top-left aligned, query i sees key j iff j ≤ i
        removed = removed | ~causal_mask(s.shape[-2], s.shape[-1], s.device)  # (Tq, Tk)
    logits = logits.masked_fill(removed, float("-inf"))
    if emit is not None:
        emit("scores", logits)
    if eps > 0:
        w = torch.softmax(logits.float(), dim=-1).to(v.dtype)  # (..., H, Tq, Tk)
    else:
        w = tropical_softmax(logits.float()).to(v.dtype)
    if emit is not None:
        emit("weights", w)
    return torch.matmul(w, v)  # (..., H, Tq, dv)


class HJAttentionStep(HJStep):
    """Attention block read as one Hopf–Cole (Gibbs) average; see the module docstring.

    mode "sdpa": forward(q, k, v[, attn_mask]) with the original SDPA flags.
    mode "eager": forward(q, kᵀ, v, *side) where `core` replays the original matmul → scale →
    (+bias) → softmax → matmul chain exactly; `bias_slots`: which side inputs are additive biases.
    `q_prescale` = s₀ when the q it gets is q_proj(x)·s₀: ε (and ε₀) are in q_proj(x)'s units,
    logits z = q·k/(s₀·ε) + (ε₀/ε)·b.

    Hook points: "scores" (logits z, [..., Sq, Sk]), "weights" (π), "output", and "stats" (an
    AttentionStepStats: lse, entropy, k_i, top-k; entropy NaN on rows with no visible key, on
    every path). Paths, one visible branch in `forward`:
      identified ε, nothing observed      the original ops (bitwise)
      "stats" observed (no scores/weights) `hjplug.kernels.hj_attention` (fused Triton on CUDA,
                                          blockwise reference elsewhere): no [Sq, Sk] scores
      deformed ε > 0, no statistics       SDPA at scale 1/ε (sdpa mode) or hj_attention (eager)
      scores / weights observed, ε = 0    the explicit matmul / softmax evaluation
    """

    hook_points: ClassVar[tuple[str, ...]] = ("scores", "weights", "output", "stats")
    per_head: ClassVar[bool] = True  # `epsilon` may be one value per query head

    def __init__(
        self,
        spec: HJSpec,
        *,
        mode: str,
        sdpa_kwargs: dict[str, Any] | None = None,
        core: fx.GraphModule | None = None,
        bias_slots: tuple[int, ...] = (),
        deform_core: fx.GraphModule | None = None,
        q_prescale: float = 1.0,
        replay_heads: bool = False,
    ) -> None:
        super().__init__(spec)
        if not (math.isfinite(q_prescale) and q_prescale > 0):
            raise InvalidArgumentError("q_prescale", "a finite number > 0", q_prescale,
                                       where=type(self).__name__)
        self.q_prescale = float(q_prescale)
        self.mode = mode
        self.sdpa_kwargs = dict(sdpa_kwargs or {})
        self.core = core
        self.bias_slots = bias_slots
        self.deform_core = deform_core  # chains with reshapes / baddbmm: replay with scaled scores
        self.replay_heads = replay_heads  # its softmax input has the heads on dim −3: ε per head
        self._stats_topk: dict[int, int] = {}  # observer key → top-k it asked for

    def observe_stats(self, fn: Any, topk: int = 0) -> _Handle:
        """Register fn(step, "stats", AttentionStepStats) with the top-k weights it needs."""
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 0:
            raise InvalidArgumentError("topk", "an int ≥ 0", topk, where=type(self).__name__)
        handle = self.observe("stats", fn)
        self._stats_topk[handle._key] = topk
        return handle

    def _requested_topk(self) -> int | None:
        """Largest top-k asked by a live "stats" observer (None: no stats observer)."""
        keys = [k for k, (p, _) in self._observers.items() if p == "stats"]
        if not keys:
            return None
        return max(self._stats_topk.get(k, 0) for k in keys)

    def _explicit_observed(self) -> bool:
        return any(p in ("scores", "weights") for p, _ in self._observers.values())

    def forward(self, q: Tensor, k: Tensor, v: Tensor, *side: Tensor | None) -> Tensor:
        if self.at_identified and not self.observed:  # fast path: the original ops
            if self.mode == "sdpa":
                mask = side[0] if side else None
                return F.scaled_dot_product_attention(q, k, v, mask, **self.sdpa_kwargs)
            assert self.core is not None
            return self.core(q, k, v, *side)
        s0 = self.q_prescale  # ε in q_proj(x)'s units: the q given here carries s₀
        e = self._epsilon
        eps0 = float(self._eps0) * s0  # type: ignore[arg-type]
        if isinstance(e, tuple) and self.deform_core is not None:  # z = z₀·ε₀/ε_h per head
            return self._replay_per_head(q, k, v, side, e, eps0, s0)
        if isinstance(e, tuple):  # one ε per head: z = (q/ε_h)·k + (ε₀/ε_h)·b, ε = 1 on scaled q
            e = self._tiled(e, q)
            q = self._per_head_queries(q, tuple(x * s0 for x in e))
            eps = 1.0
            gain: float | Tensor = torch.tensor([eps0 / (x * s0) for x in e],
                                                dtype=torch.float64)
        else:
            eps = float(e) * s0  # type: ignore[arg-type]
            gain = eps0 / eps if eps > 0 else 1.0  # finite biases scale with the logits
        if self.mode != "sdpa" and self.deform_core is not None:
            if eps == 0:
                raise HJPlugError(
                    f"{self._spec.path}: the tropical limit (ε = 0) is not available for this "
                    "attention chain (reshapes / fused bias); use ε > 0.")
            if self._requested_topk() is not None and not self._explicit_observed():
                warn_fallback(f"HJAttentionStep({self._spec.path})", _REPLAYED, q.is_cuda)
            out, z = self.deform_core(q, k, v, *side, eps0 / eps)  # softmax input z₀·ε₀/ε
            self._emit_replayed(z, eps / s0)
            self._emit("output", out)
            return out
        sdpa = self.mode == "sdpa"
        mask = side[0] if sdpa and side else None
        biases = () if sdpa else tuple(b for b in (side[i] for i in self.bias_slots)
                                       if b is not None)
        causal = sdpa and bool(self.sdpa_kwargs.get("is_causal", False))
        topk = self._requested_topk()
        reason = "the scores or weights are observed"
        if not self._explicit_observed() and (topk is not None or eps > 0):
            if topk is None and sdpa:  # deformed ε, no statistics: SDPA at scale 1/ε
                kw = {**self.sdpa_kwargs, "scale": 1.0 / eps}
                m = None if mask is None else scale_bias(mask, gain)
                out = F.scaled_dot_product_attention(q, k, v, m, **kw)
                self._emit("output", out)
                return out
            masks = [scale_bias(m, gain) for m in (mask, *biases) if m is not None]
            call = kernel_call(q, k, v, masks, causal, eps, k_transposed=not sdpa)
            if isinstance(call, KernelCall):
                out = self._kernel_forward(call, eps, topk, eps / s0)
                self._emit("output", out)
                return out
            reason = call
            warn_fallback(f"HJAttentionStep({self._spec.path})", call, q.is_cuda)
        seen: dict[str, Tensor] = {}

        def emit(point: str, t: Tensor) -> None:
            if point == "scores":
                seen["z"] = t
            self._emit(point, t)

        out = gibbs_attention(q, k, v, eps, mask=mask, biases=biases, causal=causal,
                              k_transposed=not sdpa, emit=emit, bias_gain=gain, eps0=eps0)
        if topk is not None:
            self._emit_stats(explicit_stats(seen["z"], eps / s0, topk, reason))
        self._emit("output", out)
        return out

    def _tiled(self, eps: tuple[float, ...], q: Tensor) -> tuple[float, ...]:
        """H per-head ε of a 3-D [B·H, S, d] layout (`heads_per_batch` = H) as one per slice of
        the runtime batch: ε_{b·H+h} = ε_h; other tuples unchanged."""
        per = self._spec.hamiltonian.params.get("heads_per_batch")
        n = q.shape[-3] if q.dim() >= 3 else 0
        if not isinstance(per, int) or isinstance(per, bool) or len(eps) != per or n == per \
                or n % per:
            return eps
        return eps * (n // per)

    def _replay_per_head(self, q: Tensor, k: Tensor, v: Tensor, side: tuple[Tensor | None, ...],
                         e: tuple[float, ...], eps0: float, s0: float) -> Tensor:
        """A replayed chain with one ε per head: its softmax input z₀ [..., H, Tq, Tk] (or
        [B·H, Tq, Tk]) scaled by ε₀/ε_h on the heads' dim, the bias included (a temperature)."""
        assert self.deform_core is not None
        if not self.replay_heads:
            raise HJPlugError(f"{self._spec.path}: one ε per head is not available for this "
                              "attention chain (reshapes / fused bias, and its softmax input "
                              "does not carry the heads on dim −3); use one ε per block.")
        if self._requested_topk() is not None and not self._explicit_observed():
            warn_fallback(f"HJAttentionStep({self._spec.path})", _REPLAYED, q.is_cuda)
        ratio = torch.tensor([eps0 / (x * s0) for x in e], dtype=torch.float64)  # [H]
        out, z = self.deform_core(q, k, v, *side, ratio)  # softmax input z₀·ε₀/ε_h
        self._emit_replayed(z, 1.0 / s0)  # as the per-head explicit path: z holds the 1/ε_h
        self._emit("output", out)
        return out

    def _per_head_queries(self, q: Tensor, eps: tuple[float, ...]) -> Tensor:
        """q [..., H, Tq, D] with head h divided by ε_h."""
        if self.deform_core is not None:
            raise HJPlugError(f"{self._spec.path}: one ε per head is not available for this "
                              "attention chain (reshapes / fused bias); use one ε per block.")
        if q.dim() < 3 or q.shape[-3] != len(eps):
            raise HJPlugError(f"{self._spec.path}: {len(eps)} per-head ε values, but the queries "
                              f"have shape {tuple(q.shape)} (heads on dim −3 expected).")
        inv = torch.tensor([1.0 / x for x in eps], dtype=q.dtype, device=q.device)  # [H]
        return q * inv.view(-1, 1, 1)  # [..., H, Tq, D]

    def _emit_stats(self, st: AttentionStepStats) -> None:
        """Emit "stats" with H = NaN on rows with k_i = 0 (no π; the kernels fill 0): the same
        convention on the kernel, explicit, tropical and replayed paths."""
        st = replace(st, entropy=empty_undefined(st.entropy, st.keys))
        self._emit("stats", st)  # type: ignore[arg-type]

    def _emit_replayed(self, z: Tensor, eps: float) -> None:
        """Scores, weights and statistics of a replayed chain from its softmax input z."""
        if not self.observed:
            return
        z = removed_to_inf(z)  # finfo.min stand-ins of masked_fill → −inf (removed keys)
        self._emit("scores", z)
        if any(p == "weights" for p, _ in self._observers.values()):
            self._emit("weights", torch.softmax(z.float(), dim=-1).to(z.dtype))
        topk = self._requested_topk()
        if topk is not None:
            self._emit_stats(explicit_stats(z, eps, topk, _REPLAYED))

    def _kernel_forward(self, call: KernelCall, eps: float, topk: int | None,
                        shown: float) -> Tensor:
        """out from hj_attention (scale = 1/ε on the q given); statistics emitted as
        AttentionStepStats (ε recorded as `shown`, q_proj(x)'s units) unless topk is None."""
        from hjplug.kernels import hj_attention
        from hjplug.kernels.registry import choose

        r = hj_attention(call.q, call.k, call.v, scale=1.0 / eps, causal=call.causal,
                         bias=call.bias, topk=topk or 0)  # out [B, H, Sq, Dv]; lse, H [B, H, Sq]
        if topk is None:
            return r.out.squeeze(0) if call.squeeze else r.out
        extra = None if call.v.shape[-1] == call.q.shape[-1] else "value head dim differs"
        used = choose("hj_attention", call.q, call.k, call.v, head_dim=call.q.shape[-1],
                      topk=topk, unsupported=extra)
        self._emit_stats(AttentionStepStats(r.lse, r.entropy, visible_keys(call), shown,
                                            used.backend, "", r.topk_weights, r.topk_indices))
        return r.out.squeeze(0) if call.squeeze else r.out
