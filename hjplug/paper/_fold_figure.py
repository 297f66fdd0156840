"""The figure of experiment 6: 1-D landscape, 1-D bifurcation diagram, 2-D counts vs ε."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hjplug.layers import LSELayer
from hjplug.paper._common import F64, RunConfig, new_figure, save_figure
from hjplug.paper._counts import X_RANGE

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.landscape import FoldScan
    from hjplug.paper.exp6_folds import FoldPanel

__all__ = ["fold_figure"]


def fold_figure(
    cfg: RunConfig, panels: tuple[FoldPanel, FoldPanel], scans: tuple[FoldScan, FoldScan],
    W1: Tensor, b1: Tensor, y1: Tensor, y2: Tensor,
) -> Path:
    """Three panels; panels = (1-D, 2-D) FoldPanels, scans their FoldScans; W1 [6, 1], b1 [6]
    the 1-D layer, y1 [6, 1] / y2 [16, 2] the atoms."""
    fig, (ax0, ax1, ax2) = new_figure(3, width=5.0, height=4.2)
    p1, p2 = panels
    scan1 = scans[0]
    layer = LSELayer(1, W1.shape[0])
    with torch.no_grad():
        layer.W.copy_(W1)
        layer.b.copy_(b1)
    xs = torch.linspace(*X_RANGE, 801, dtype=F64).unsqueeze(1)
    show = sorted({0, len(p1.eps) // 3, len(p1.eps) // 2, 2 * len(p1.eps) // 3, len(p1.eps) - 1})
    for k in show:
        e = p1.eps[k]
        with torch.no_grad():
            ax0.plot(xs.squeeze(1), layer.entropy(xs, e), label=f"ε = {e:.3g}")
        for cp in scan1.points[k]:
            ax0.plot(cp.x[0], cp.entropy, "v" if cp.kind == "min" else "^",
                     color="tab:blue" if cp.kind == "min" else "tab:red", ms=5)
    for yj in y1.squeeze(1).tolist():
        ax0.axvline(yj, color="gray", lw=0.6, ls=":")
    ax0.set_xlabel("x (dotted: atoms y_j)")
    ax0.set_ylabel("H(π(x; ε)) [nats]")
    ax0.set_title("1-D landscape (▼ min, ▲ max)")
    ax0.legend(fontsize=7)
    for kind, color, marker in (("min", "tab:blue", "o"), ("max", "tab:red", "^")):
        es = [e for e, pts in zip(scan1.eps, scan1.points, strict=True) for p in pts
              if p.kind == kind]
        xv = [p.x[0] for pts in scan1.points for p in pts if p.kind == kind]
        ax1.scatter(es, xv, s=8, color=color, marker=marker, label=f"{kind}ima" if kind == "min"
                    else "maxima")
    for m in p1.merges:
        ax1.axvline(m.eps, color="black", lw=0.8, ls="--")
    ax1.plot([], [], color="black", ls="--", label="basin merge (fold)")
    ax1.set_xscale("log")
    ax1.set_xlabel("ε")
    ax1.set_ylabel("x of critical point")
    ax1.set_title("1-D bifurcation diagram")
    ax1.legend(fontsize=7)
    for counts, label, color in ((p2.n_minima, "minima", "tab:blue"),
                                 (p2.n_saddles, "saddles", "tab:green"),
                                 (p2.n_maxima, "maxima", "tab:red")):
        ax2.semilogx(p2.eps, counts, "o-", color=color, label=f"{label} (scan)")
    ax2.semilogx(p2.eps, p2.grid_minima, "x", color="black", ms=8,
                 label="minima (dense grid + descent)")
    for m in p2.merges:
        ax2.axvline(m.eps, color="black", lw=0.8, ls="--")
    ax2.set_xlabel("ε")
    ax2.set_ylabel("number of critical points")
    ax2.set_title(f"2-D clusters (N = {y2.shape[0]}): critical points vs ε")
    ax2.legend(fontsize=7)
    fig.suptitle("Experiment 6: fold bifurcations of the attribution landscape")
    return save_figure(fig, cfg.out_dir / "exp6_folds.png")
