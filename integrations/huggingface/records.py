"""Records of the Hugging Face integration: per-call attention statistics and per-module state.

Statistics of one attention call, per head h and query i, for the logits actually used
z_ij = (scaling·q_i·k_j + b_ij) / λ_h (λ_h = deformation, ε_h = λ_h / scaling):

    lse_i    = log Σ_j exp(z_ij)                    (natural log-partition; +∞ where λ_h = 0)
    value_i  = ε_h · lse_i = LSE_ε(score)           (the HJ value; max_j s_ij/scaling at λ_h = 0)
    H_i      = −Σ_j π_ij log π_ij = lse_i − E_π[z_i] (nats)
    H_i / log k_i,  k_i = number of unmasked keys   (NaN where k_i ≤ 1)

Masked keys are removed atoms (π = 0), never uniform weights. A query with no visible key
(k_i = 0) has no Gibbs distribution: out_i = 0, lse_i = log Σ_∅ = −∞, value_i = −∞, H_i
undefined (NaN), top-k weight 0 / index −1. (Eager transformers attention instead returns π
uniform over all masked keys there: its finfo.min mask leaves them at one logit.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from hjplug.spec import HJSpec

__all__ = ["AttentionStats", "ModuleState", "Recorder"]


@dataclass(frozen=True)
class AttentionStats:
    """Per-head statistics of one attention call (delivered to a recorder; see module docstring).

    path      module path of the attention block, e.g. "model.layers.3.self_attn"
    index     position of the block in `specs(model)` order
    epsilon   [H]          effective ε_h = λ_h / scaling (0 = tropical / hard-max)
    lse       [B, H, Sq]   log Σ_j exp(z_ij)
    value     [B, H, Sq]   ε_h · lse_i
    entropy   [B, H, Sq]   H(π_i) in nats (NaN where k_i = 0: undefined)
    normalized_entropy [B, H, Sq]  H(π_i)/log k_i (NaN where k_i ≤ 1)
    keys      [B, H, Sq]   k_i, unmasked keys (int64)
    backend   "kernel" (hjplug.kernels.hj_attention, blockwise) or "eager" (readable fallback)
    topk_weights [B, H, Sq, k]  the k largest π_ij, descending (None unless a recorder asked);
                 log(π_(1)/π_(2)) = Δ_i/ε_h is the top-2 logit gap over ε
    topk_indices [B, H, Sq, k]  their key indices j (−1 where fewer than k keys are visible)
    """

    path: str
    index: int
    epsilon: Tensor
    lse: Tensor
    value: Tensor
    entropy: Tensor
    normalized_entropy: Tensor
    keys: Tensor
    backend: str
    topk_weights: Tensor | None = None
    topk_indices: Tensor | None = None


Recorder = Callable[[AttentionStats], None]


@dataclass(eq=False)
class ModuleState:
    """Mutable runtime state hjplug attaches to one attention module (as `module._hjplug`).

    spec:     the block record at deformation 1 (`module.hj_spec` shows the current one)
    scale:    λ per query head (None = undeformed; 0 = tropical)
    recorders: callbacks receiving AttentionStats (free when empty)
    topk:     top-k π requested by each active recorder (the largest is computed)
    keep:     keep the last call's statistics in `last` (enable(stats=True))
    """

    path: str
    index: int
    heads: int
    spec: HJSpec
    scale: tuple[float, ...] | None = None
    recorders: list[Recorder] = field(default_factory=list)
    topk: list[int] = field(default_factory=list)
    keep: bool = False
    last: AttentionStats | None = None

    @property
    def idle(self) -> bool:
        """True when the fast path may run: no deformation, no statistics wanted."""
        return self.scale is None and not self.recorders and not self.keep
