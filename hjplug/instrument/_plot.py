"""Sweep plot (matplotlib, Agg, no pyplot state): mean H/log k against λ per chosen head —
solid: the deformed model; dashed, same colour: the head at fixed (undeformed) inputs; folds
marked. Written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["plot_sweep"]


def plot_sweep(sw: Any, path: str) -> str:
    from hjplug.paper._common import new_figure, save_figure

    fig, (ax,) = new_figure(1, width=7.0, height=4.2)
    lam = sw.scales.tolist()
    fixed = getattr(sw, "fixed_normalized_entropy", None)
    colours = [f"C{i}" for i in range(10)]
    n = 0
    for i in sw.layers:
        heads = sw.heads if sw.heads is not None else range(sw.entropy.shape[2])
        for h in heads:
            y = sw.normalized_entropy[:, i, h].tolist()
            if all(math.isnan(v) for v in y):
                continue
            c = colours[n % len(colours)]
            n += 1
            ax.plot(lam, y, lw=0.8, alpha=0.7, color=c)
            if fixed is not None:
                ax.plot(lam, fixed[:, i, h].tolist(), lw=0.8, alpha=0.7, color=c, ls="--")
    if sw.folds and sw.fold_scan is not None:
        e0 = sw.fold_scan.eps[0] / lam[0]  # ε_h of the fold head
        for f in sw.folds:
            ax.axvline(f.eps / e0, color="k", ls=":", lw=0.8)
    ax.axhline(0.33, color="grey", lw=0.5)
    ax.axhline(0.66, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("λ (ε_h → λ·ε_h)")
    ax.set_ylabel("mean H(π)/log k")
    what = "solid: deformed model; dashed: fixed inputs" if fixed is not None else ""
    ax.set_title(f"ε-sweep: {len(sw.layers)} blocks; {len(sw.folds)} folds; "
                 f"{len(sw.violations)} monotonicity violations\n{what}".rstrip(), fontsize=10)
    save_figure(fig, Path(path))
    return path
