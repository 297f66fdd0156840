"""Frozen records of the instrumentation: per-head summaries, sweep results, attributions.

Regimes (paper-notes §5), from the mean normalised entropy H(π_i)/log k_i over the queries with
k_i ≥ 2 and finite statistics:  particle < 0.33 ≤ mixed ≤ 0.66 < wave.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from hjplug.landscape import Fold, FoldScan

__all__ = ["PARTICLE", "WAVE", "Attribution", "HeadSummary", "MonotonicityViolation",
           "Summary", "SweepResult", "regime"]

PARTICLE = 0.33
WAVE = 0.66


def regime(normalized_entropy: float) -> str:
    """'particle' (< 0.33), 'mixed' (0.33 … 0.66), 'wave' (> 0.66), 'n/a' (NaN)."""
    if math.isnan(normalized_entropy):
        return "n/a"
    if normalized_entropy < PARTICLE:
        return "particle"
    return "wave" if normalized_entropy > WAVE else "mixed"


@dataclass(frozen=True)
class HeadSummary:
    """One attention head (or one readout / gate) summarised over every recorded row.

    rows: rows with k ≥ 2, finite statistics and a real (unpadded) query (the ones averaged);
    nan_rows: rows flagged NaN (excluded from every mean and counted here; rows with no visible
    key, whose entropy is undefined, are not NaN rows). Means are NaN where a statistic was not
    recorded.
    """

    name: str  # canonical prefix, e.g. "layers.3.attn"
    path: str  # module path
    kind: str  # "attention" | "readout" | "gate"
    head: int
    epsilon: float
    rows: int
    nan_rows: int
    mean_entropy: float
    mean_normalized_entropy: float
    regime: str
    mean_lse: float = math.nan
    mean_gap_ratio: float = math.nan  # mean (Δ/ε)/log k over rows with finite gap
    max_curvature: float = math.nan  # max ‖Cov_π(k)‖₂/ε
    curvature_bound: float = math.nan  # max_j ‖k_j‖²/ε (≥ max_curvature)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """Per layer × head summaries (`rec.summary()`), iterable; `.regimes()` counts them."""

    heads: tuple[HeadSummary, ...]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.heads)

    def __len__(self) -> int:
        return len(self.heads)

    def __getitem__(self, i: int) -> HeadSummary:
        return self.heads[i]

    def regimes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for h in self.heads:
            out[h.regime] = out.get(h.regime, 0) + 1
        return out

    def to_records(self) -> list[dict[str, Any]]:
        return [h.to_dict() for h in self.heads]

    def rich_table(self, title: str = "ε-statistics per head") -> Any:
        """A rich Table; columns with no recorded data are left out."""
        from rich.table import Table

        cols = [("hook", lambda h: h.name), ("h", lambda h: str(h.head)),
                ("ε", lambda h: _f(h.epsilon)),
                ("H/log k", lambda h: _f(h.mean_normalized_entropy)),
                ("regime", lambda h: f"[{_COLOUR.get(h.regime, 'dim')}]{h.regime}[/]"),
                ("H", lambda h: _f(h.mean_entropy)),
                ("Δ/ε÷log k", lambda h: _f(h.mean_gap_ratio)),
                ("‖Cov‖/ε", lambda h: _f(h.max_curvature)),
                ("bound", lambda h: _f(h.curvature_bound)),
                ("rows", lambda h: str(h.rows)),
                ("NaN", lambda h: str(h.nan_rows) if h.nan_rows == 0 else f"[red]{h.nan_rows}[/]")]
        optional = {"Δ/ε÷log k": "mean_gap_ratio", "‖Cov‖/ε": "max_curvature",
                    "bound": "curvature_bound"}
        keep = [(n, f) for n, f in cols if n not in optional or any(
            not math.isnan(getattr(h, optional[n])) for h in self.heads)]
        t = Table(title=title)
        for n, _ in keep:
            t.add_column(n, justify="left" if n in ("hook", "regime") else "right",
                         no_wrap=n in ("hook", "regime"))
        for h in self.heads:
            t.add_row(*(f(h) for _, f in keep))
        return t


_COLOUR = {"particle": "red", "mixed": "yellow", "wave": "cyan"}


def _f(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.4g}"


@dataclass(frozen=True)
class MonotonicityViolation:
    """H(π_i) decreased from λ_lo to λ_hi at fixed inputs: ∂H/∂ε = Var_π(z)/ε³ ≥ 0 forbids it —
    a bug (in hjplug or in the attention implementation), never a property of the model."""

    layer: int
    path: str
    head: int
    batch: int
    query: int
    scale_lo: float
    scale_hi: float
    entropy_lo: float
    entropy_hi: float


@dataclass(frozen=True)
class SweepResult:
    """ε → λ·ε over `scales` for the chosen blocks/heads (`hjplug.sweep`).

    entropy / normalized_entropy [S, L, H]: mean over rows (k ≥ 2, finite) of the deformed
    model's H(π_i) and H/log k_i (NaN for heads a block lacks); epsilon [S, L, H] the ε_h used.
    fixed_entropy / fixed_normalized_entropy [S, L, H]: the same means for each chosen head at
    the undeformed inputs (its own temperature response; None when not computed).
    violations: fixed-input monotonicity failures (must be empty); checked: rows × steps checked.
    folds: basin merges of the attribution landscape of `fold_source` (see hjplug.landscape).
    """

    scales: Tensor
    entropy: Tensor
    normalized_entropy: Tensor
    epsilon: Tensor
    layers: tuple[int, ...]
    heads: tuple[int, ...] | None
    paths: tuple[str, ...]
    violations: tuple[MonotonicityViolation, ...]
    checked: int
    folds: tuple[Fold, ...] = ()
    fold_scan: FoldScan | None = None
    fold_source: str = ""
    nan_rows: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    fixed_entropy: Tensor | None = None
    fixed_normalized_entropy: Tensor | None = None

    @property
    def ok(self) -> bool:
        """True when no monotonicity violation was found."""
        return not self.violations

    def to_dataframe(self) -> Any:
        """Long table: scale, layer, head, epsilon, entropy, normalized_entropy and, when
        computed, fixed_entropy / fixed_normalized_entropy (needs pandas)."""
        from hjplug.instrument._frames import frame

        S, L, H = self.entropy.shape
        names = ["scale", "layer", "path", "head", "epsilon", "entropy", "normalized_entropy"]
        fixed = self.fixed_entropy is not None and self.fixed_normalized_entropy is not None
        if fixed:
            names += ["fixed_entropy", "fixed_normalized_entropy"]
        cols: dict[str, list[Any]] = {k: [] for k in names}
        for s in range(S):
            for layer in range(L):
                for h in range(H):
                    cols["scale"].append(float(self.scales[s]))
                    cols["layer"].append(layer)
                    cols["path"].append(self.paths[layer])
                    cols["head"].append(h)
                    cols["epsilon"].append(float(self.epsilon[s, layer, h]))
                    cols["entropy"].append(float(self.entropy[s, layer, h]))
                    cols["normalized_entropy"].append(float(self.normalized_entropy[s, layer, h]))
                    if fixed:
                        assert self.fixed_entropy is not None
                        assert self.fixed_normalized_entropy is not None
                        cols["fixed_entropy"].append(float(self.fixed_entropy[s, layer, h]))
                        cols["fixed_normalized_entropy"].append(
                            float(self.fixed_normalized_entropy[s, layer, h]))
        return frame(cols, "SweepResult.to_dataframe")

    def plot(self, path: str) -> str:
        """Mean H/log k against λ (log axis), one line per chosen head; folds marked."""
        from hjplug.instrument._plot import plot_sweep

        return plot_sweep(self, path)


@dataclass(frozen=True)
class Attribution:
    """Gibbs weights π over keys (attention) or atoms (LSE layer): the closed-form influence.

    weights [R, N]: π_ij = ∂f_i/∂b_j (f = ε·LSE((W x + b)/ε), the HJ value); each row sums to 1
    (checked: sum_error = max |Σ_j π_ij − 1| over rows with a visible key and finite weights).
    value [R]: f_i; keys [R]: visible atoms; nan [R]: rows flagged NaN (not checked, not hidden).
    A row with no visible key (keys = 0) has no distribution: weights 0, value = −∞ (the empty
    sum), top-k index −1; it is neither checked nor flagged.
    """

    weights: Tensor
    topk_weights: Tensor
    topk_indices: Tensor
    value: Tensor
    keys: Tensor
    nan: Tensor
    epsilon: float
    sum_error: float
    source: str  # e.g. "layers.3.attn head 5 (bert.encoder.layer.3.attention.self), batch 0"

    @property
    def influence(self) -> Tensor:
        """∂f_i/∂b_j = π_ij (paper-notes §1) — the same tensor as `weights`."""
        return self.weights
