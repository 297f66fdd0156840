"""Statistic names and the canonical hook names under which a recorder stores them.

Canonical hook names (one tensor per name; `rec[name]`):

    layers.{i}.attn.{stat}    attention block i (position in module order: the i-th module whose
                              forward is an attention call; = the layer index for models with one
                              attention block per layer). Tensors are [B, H, Sq] unless noted.
    readout.{role}.{stat}     LSE / softmax readouts: role = lm_head | classifier | router{j}
                              (Hugging Face) or lse{j} (FX-converted HJLSEStep j). [..., rows]
    gates.{i}.{gate}.{stat}   σ gates of recurrent block i (gate = input | forget | output for
                              LSTM, reset | update for GRU): 2-atom Gibbs weights with ε = 1.

`rec.paths[prefix]` maps each prefix (e.g. "layers.3.attn") to the module path it came from.

Statistic (request name → stored names), per head h and query / row i (paper-notes §1–§3, §5):
    epsilon      epsilon [H]                ε_h = λ_h / scaling (ε = 1/scale)
    lse          lse, value                 lse_i = log Σ_j exp(z_ij),  value_i = ε_h·lse_i
    entropy      entropy, normalized_entropy  H(π_i) nats; H/log k_i (NaN where k_i ≤ 1)
    gap          gap, gap_ratio             Δ_i/ε_h = log π_(1) − log π_(2);  (Δ_i/ε_h)/log k_i
                                            (ratio ≫ 1: one atom dominates, f_ε − f_0 ≈ 0)
    topk         topk_weights, topk_indices [..., k]  the k largest π_ij and key indices (−1: none)
    curvature    curvature, curvature_bound ‖Cov_π(k)‖₂/ε_h = ‖∇²_q value_i‖₂ and max_j ‖k_j‖²/ε_h
    weights      weights [B, H, Sq, Sk]     the full π (only when asked)
Always stored: epsilon, keys (k_i, unmasked keys; int64) and nan (bool: the row's statistics
are NaN — flagged, never averaged).

Rows with no visible key (k_i = 0: every key masked, e.g. left-padded queries) have no Gibbs
distribution: lse = log Σ_∅ = −∞, value = −∞, entropy / normalized_entropy / gap / curvature
undefined (NaN), top-k weight 0 with index −1, π = 0; they are not flagged in `nan` (nothing went
wrong) and, like every row with k_i ≤ 1, never averaged. (Eager transformers attention, whose
finfo.min mask leaves all masked keys at one logit, returns π uniform over every key there.)
"""

from __future__ import annotations

from collections.abc import Iterable

from hjplug.errors import InvalidArgumentError

__all__ = ["ALWAYS", "DEFAULT_STATS", "PRODUCES", "STATS", "check_stats", "hook_name"]

PRODUCES: dict[str, tuple[str, ...]] = {
    "epsilon": ("epsilon",),
    "lse": ("lse", "value"),
    "entropy": ("entropy", "normalized_entropy"),
    "gap": ("gap", "gap_ratio"),
    "topk": ("topk_weights", "topk_indices"),
    "curvature": ("curvature", "curvature_bound"),
    "weights": ("weights",),
}
STATS: tuple[str, ...] = tuple(PRODUCES)
ALWAYS: tuple[str, ...] = ("epsilon", "keys", "nan")
DEFAULT_STATS: tuple[str, ...] = ("epsilon", "lse", "entropy")
# also accepted as request names: a stored name selects its whole group
_ALIASES: dict[str, str] = {n: s for s, ns in PRODUCES.items() for n in (s, *ns)}


def check_stats(stats: str | Iterable[str], where: str) -> tuple[str, ...]:
    """Validated request names (deduplicated, in STATS order); unknown names list the valid ones."""
    items = [stats] if isinstance(stats, str) else list(stats)
    out: set[str] = set()
    for s in items:
        if not isinstance(s, str) or s not in _ALIASES:
            raise InvalidArgumentError(
                "stats", "a tuple of statistic names from: " + ", ".join(STATS), s, where=where,
                hint="Stored names such as 'normalized_entropy' select their group too.")
        out.add(_ALIASES[s])
    if not out:
        raise InvalidArgumentError("stats", "at least one of: " + ", ".join(STATS), stats,
                                   where=where)
    return tuple(s for s in STATS if s in out)


def hook_name(prefix: str, stat: str) -> str:
    return f"{prefix}.{stat}"
