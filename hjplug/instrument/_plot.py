"""Sweep plot (matplotlib, Agg): mean H/log k against λ per chosen head; folds marked."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["plot_sweep"]


def plot_sweep(sw: Any, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    lam = sw.scales.tolist()
    for i in sw.layers:
        heads = sw.heads if sw.heads is not None else range(sw.entropy.shape[2])
        for h in heads:
            y = sw.normalized_entropy[:, i, h].tolist()
            if all(math.isnan(v) for v in y):
                continue
            ax.plot(lam, y, lw=0.8, alpha=0.7)
    if sw.folds and sw.fold_scan is not None:
        e0 = sw.fold_scan.eps[0] / lam[0]  # ε_h of the fold head
        for f in sw.folds:
            ax.axvline(f.eps / e0, color="k", ls=":", lw=0.8)
    ax.axhline(0.33, color="grey", lw=0.5)
    ax.axhline(0.66, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("λ (ε_h → λ·ε_h)")
    ax.set_ylabel("mean H(π)/log k")
    ax.set_title(f"ε-sweep: {len(sw.layers)} blocks; {len(sw.folds)} folds; "
                 f"{len(sw.violations)} monotonicity violations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
