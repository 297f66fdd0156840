"""The report's figures (matplotlib, Agg) as PNG bytes; None where a figure's data is absent."""

from __future__ import annotations

import io
import math
from typing import Any

from hjplug.htmlreport.collect import ReportData, eps_star
from hjplug.instrument.records import PARTICLE, WAVE

__all__ = ["FIGURES", "make_figures"]

_SHORT = {"particle": "P", "mixed": "M", "wave": "W", "n/a": "–"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def heatmap(d: ReportData) -> bytes | None:
    if d.grid is None:
        return None
    plt = _plt()
    L, H = len(d.grid), len(d.grid[0])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * H + 2.5), max(3.0, 0.45 * L + 1.6)))
    im = ax.imshow(d.grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(L):
        for j in range(H):
            v = d.grid[i][j]
            ax.text(j, i, _SHORT.get(d.regimes[i][j], "?"), ha="center", va="center",
                    fontsize=8, color="white" if (math.isnan(v) or v < 0.6) else "black")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer (depth)")
    ax.set_title("mean normalised entropy H(π)/log k per head\n"
                 f"P particle (< {PARTICLE}), M mixed, W wave (> {WAVE})", fontsize=10)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("H(π)/log k  (dimensionless, 0 = hard max, 1 = uniform)")
    return _png(fig)


def depth(d: ReportData) -> bytes | None:
    if d.grid is None:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    xs = list(range(len(d.grid)))
    rows = [[v for v in r if not math.isnan(v)] for r in d.grid]
    mean = [sum(r) / len(r) if r else math.nan for r in rows]
    lo = [min(r) if r else math.nan for r in rows]
    hi = [max(r) if r else math.nan for r in rows]
    ax.fill_between(xs, lo, hi, alpha=0.25, label="min … max over heads")
    ax.plot(xs, mean, "o-", label="mean over heads")
    ax.axhspan(0, PARTICLE, color="tab:blue", alpha=0.06)
    ax.axhspan(WAVE, 1, color="tab:red", alpha=0.06)
    ax.text(xs[-1], PARTICLE / 2, "particle", ha="right", va="center", fontsize=8)
    ax.text(xs[-1], (1 + WAVE) / 2, "wave", ha="right", va="center", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(xs)
    ax.set_xlabel("layer index  (depth = HJ time: one attention step per layer)")
    ax.set_ylabel("H(π)/log k  (dimensionless)")
    ax.set_title("entropy against depth")
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def sweep_curves(d: ReportData) -> bytes | None:
    """H/log k against ε for the most / least focused heads (open squares: the head alone at
    fixed inputs); per head: dotted = its own ε_h,
    dashed = empirical ε*_½ (H/log k = ½), dash-dot = the paper's ε* = N^{−1/d}·|q|·R."""
    sw = d.sweep
    if sw is None or d.focused is None or d.diffuse is None:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for (li, h), label, color in ((d.focused, "most focused", "tab:blue"),
                                  (d.diffuse, "least focused", "tab:red")):
        if li not in sw.layers:
            continue
        eps = sw.epsilon[:, li, h].tolist()
        y = sw.normalized_entropy[:, li, h].tolist()
        ax.plot(eps, y, "o-", color=color, label=f"{label}: layer {li} head {h}")
        if sw.fixed_normalized_entropy is not None:
            ax.plot(eps, sw.fixed_normalized_entropy[:, li, h].tolist(), "s-", color=color,
                    lw=0.8, alpha=0.55, mfc="none", label="  the same head at fixed inputs")
        native = [e for e, s in zip(eps, sw.scales.tolist(), strict=True) if s == 1.0]
        if native:
            ax.axvline(native[0], color=color, ls=":", lw=0.8)
        es = eps_star(eps, y)
        if not math.isnan(es):
            ax.axvline(es, color=color, ls="--", lw=1.0, label=f"  ε*½ = {es:.3g} (H/log k = ½)")
        ps = d.paper_scales.get((li, h))
        if ps is not None:
            ax.axvline(ps.eps_star, color=color, ls="-.", lw=1.2,
                       label=f"  ε*paper = N^(−1/d)·|q|·R = {ps.eps_star:.3g} "
                             f"(N = {ps.n_keys:.0f}, d = {ps.dim:.1f})")
    ax.axhline(0.0, color="black", lw=1.2)
    ax.annotate("← tropical limit ε → 0: π → hard max, H → 0 (black line)", (0.01, 0.03),
                xycoords="axes fraction", fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_ylim(-0.14, 1.05)
    ax.set_xlabel("ε = λ·ε_h  (viscosity = 1/attention scale; dotted: the model's own ε_h)")
    ax.set_ylabel("mean H(π)/log k  (dimensionless)")
    ax.set_title("ε-sweep: dashed ε*½ (empirical), dash-dot ε* = N^(−1/d)·|q|·R (paper)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def folds(d: ReportData) -> bytes | None:
    sw = d.fold
    scan = getattr(sw, "fold_scan", None)
    if scan is None:
        return None
    plt = _plt()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for kind, color, marker in (("min", "tab:blue", "o"), ("saddle", "tab:green", "s"),
                                ("max", "tab:red", "^")):
        es = [e for e, pts in zip(scan.eps, scan.points, strict=True) for p in pts
              if p.kind == kind]
        ts = [p.coords[0] for pts in scan.points for p in pts if p.kind == kind]
        if es:
            ax0.scatter(es, ts, s=18, color=color, marker=marker, label=f"{kind} of H")
    for f in scan.folds:
        ax0.axvline(f.eps, color="black", ls="--", lw=0.8)
    ax0.plot([], [], color="black", ls="--", label="basin merge (fold)")
    ax0.set_xscale("log")
    ax0.set_xlabel("ε  (viscosity)")
    ax0.set_ylabel("path coordinate t  (0 = q_a, 1 = q_b)")
    ax0.set_title("bifurcation diagram: critical points of H(π) along the path", fontsize=10)
    ax0.legend(fontsize=7)
    ax1.semilogx(scan.eps, scan.n_minima, "o-", color="tab:blue", label="minima")
    ax1.semilogx(scan.eps, scan.n_maxima, "^-", color="tab:red", label="maxima")
    for f in scan.folds:
        ax1.axvline(f.eps, color="black", ls="--", lw=0.8)
    ax1.set_xlabel("ε  (viscosity)")
    ax1.set_ylabel("number of critical points")
    from matplotlib.ticker import MaxNLocator

    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_title(f"{len(scan.folds)} fold(s) over ε ∈ [{min(scan.eps):.3g}, "
                  f"{max(scan.eps):.3g}]", fontsize=10)
    ax1.legend(fontsize=7)
    return _png(fig)


def attribution(d: ReportData) -> bytes | None:
    a = d.attribution
    if a is None:
        return None
    plt = _plt()
    w = a.topk_weights[0].tolist()
    idx = a.topk_indices[0].tolist()
    labels = [f"{d.tokens[j]} ({j})" if d.tokens and j < len(d.tokens) else f"#{j}"
              for j in idx]
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    bars = ax.bar(range(len(w)), w, color="tab:purple")
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in w], fontsize=7)
    ax.set_ylim(0, min(1.0, max(w, default=1.0)) * 1.15 + 1e-9)
    ax.set_xticks(range(len(w)))
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.set_xlabel("key token (position)")
    ax.set_ylabel("Gibbs weight π_j  (probability)")
    q = d.query if d.query is not None else 0
    qname = d.tokens[q] if d.tokens and q < len(d.tokens) else f"#{q}"
    head = d.attr_head or (0, 0)
    ax.set_title(f"top-{len(w)} attribution for query {qname!r} ({q}), layer {head[0]} head "
                 f"{head[1]}, ε = {a.epsilon:.3g}", fontsize=9)
    return _png(fig)


# (key, title) in report order; the key names the PNG in --format md.
FIGURES: tuple[tuple[str, str, Any], ...] = (
    ("entropy_heatmap", "Entropy per (layer, head)", heatmap),
    ("entropy_depth", "Entropy against depth (depth = HJ time)", depth),
    ("eps_sweep", "ε-sweep of the most and least focused heads", sweep_curves),
    ("folds", "Fold bifurcations of one head", folds),
    ("attribution", "Top-k attribution weights π", attribution),
)


def make_figures(d: ReportData) -> dict[str, bytes]:
    """{key: PNG bytes} for every figure whose data exists; a failing figure adds an error."""
    out: dict[str, bytes] = {}
    for key, _title, fn in FIGURES:
        try:
            png = fn(d)
        except Exception as exc:  # one broken figure must not sink the report
            d.errors.append((f"figure {key}", f"{type(exc).__name__}: {exc}"))
            continue
        if png is not None:
            out[key] = png
    return out
