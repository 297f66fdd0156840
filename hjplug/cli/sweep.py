"""`hjplug sweep [MODEL] [--scales lo:hi:n | a,b,c] [--plot out.png] [--json]`: ε → λ·ε sweep with
the entropy-monotonicity check and fold detection (see hjplug.instrument.sweep)."""

from __future__ import annotations

import argparse
import json
import math

from hjplug.cli._model_arg import add_model_argument, add_text_argument, check_output, load
from hjplug.cli._text import check_text
from hjplug.errors import InvalidArgumentError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="deform ε → λ·ε over a grid: entropy per head, monotonicity check, folds",
        description="For each λ (log grid), run the model with ε_h → λ·ε_h on the chosen "
        "layers/heads; report the mean entropy per head, and each head's own response at the "
        "undeformed inputs (one forward, every λ in one entropy_sweep pass); check ∂H/∂ε ≥ 0 "
        "at fixed inputs (a violation is a bug) and find fold bifurcations (basin merges) of "
        "one head's attribution landscape. Default model: the bundled all-MiniLM-L6-v2.")
    add_model_argument(p, help="as for `hjplug stats`")
    add_text_argument(p, help="sentence to tokenize")
    p.add_argument("--scales", default="0.01:10:40", metavar="LO:HI:N",
                   help="lo:hi:n (n log-spaced λ) or a comma-separated list; λ > 0")
    p.add_argument("--layers", default=None, metavar="LIST",
                   help="comma-separated attention block indices (≥ 0; default: all)")
    p.add_argument("--heads", default=None, metavar="LIST",
                   help="comma-separated head indices (≥ 0; default: all)")
    p.add_argument("--no-folds", action="store_true", help="skip the fold scan")
    p.add_argument("--no-fixed", action="store_true",
                   help="skip the fixed-input curves (each head's own response at the "
                   "undeformed inputs, all λ in one entropy_sweep pass)")
    p.add_argument("--plot", default=None, metavar="FILE", help="write a PNG of H/log k against λ")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def parse_scales(text: str) -> list[float]:
    """'lo:hi:n' → n log-spaced values; 'a,b,c' → those values. Every λ must be finite and
    > 0 (checked here, before the model is loaded)."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            a, b, k = float(lo), float(hi), int(n)
            if k < 1 or not all(math.isfinite(v) and v > 0 for v in (a, b)):
                raise ValueError
            la, lb = math.log(a), math.log(b)  # in log space: b / a may overflow
            values = [a] if k == 1 else [a, *(math.exp(la + (lb - la) * i / (k - 1))
                                              for i in range(1, k - 1)), b]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError
        return values
    except (ValueError, OverflowError):
        raise InvalidArgumentError("--scales", "lo:hi:n with finite lo, hi > 0 and n ≥ 1, or "
                                   "a comma-separated list of finite numbers > 0", text,
                                   hint="For example --scales 0.01:10:40.") from None


def _indices(text: str | None, name: str, what: str) -> list[int] | None:
    """--layers / --heads: None (all), or at least one index ≥ 0 (no Python negative indexing)."""
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise InvalidArgumentError(name, f"comma-separated {what} ≥ 0 (0 = the first)", text,
                                   hint=f"Leave out {name} for all of them.")
    return values


def run(args: argparse.Namespace) -> int:
    from hjplug.instrument import sweep

    scales = parse_scales(args.scales)
    layers = _indices(args.layers, "--layers", "attention block indices")
    heads = _indices(args.heads, "--heads", "head indices")
    check_text(args.model, args.text)
    if args.plot is not None:  # before the sweep: fails fast, never overwrites the model
        check_output(args.plot, args.model, "--plot", "sweep.png", suffixes=(".png",))
    loaded = load(args.model, text=args.text)
    try:
        sw = sweep(loaded.model, loaded.inputs, scales, layers=layers, heads=heads,
                   folds=not args.no_folds, progress=None if not args.json else False,
                   fixed_inputs=not args.no_fixed)
    except InvalidArgumentError as exc:  # an index the model lacks: name the option
        if exc.name not in ("layers", "heads"):
            raise
        raise InvalidArgumentError(f"--{exc.name}", exc.expected, exc.got,
                                   hint=exc.hint) from None
    if args.plot is not None:
        sw.plot(args.plot)
    if args.json:
        def clean(x: float) -> float | None:
            return x if math.isfinite(x) else None

        def grid(t: object) -> object:
            if t is None:
                return None
            return [[[clean(v) for v in row] for row in s] for s in t.tolist()]  # type: ignore[attr-defined]
        print(json.dumps({
            "model": loaded.name, "scales": sw.scales.tolist(), "layers": list(sw.layers),
            "heads": None if sw.heads is None else list(sw.heads), "paths": list(sw.paths),
            "entropy": [[[clean(v) for v in row] for row in s] for s in sw.entropy.tolist()],
            "normalized_entropy": grid(sw.normalized_entropy),
            "fixed_entropy": grid(sw.fixed_entropy),
            "fixed_normalized_entropy": grid(sw.fixed_normalized_entropy),
            "monotonicity": {"checked": sw.checked, "violations": len(sw.violations)},
            "folds": [{"eps": f.eps, "eps_lo": f.eps_lo, "eps_hi": f.eps_hi,
                       "minima_before": f.minima_before, "minima_after": f.minima_after,
                       "min_abs_eigenvalue": f.min_abs_eigenvalue} for f in sw.folds],
            "exits": [{"eps": f.eps, "eps_lo": f.eps_lo, "eps_hi": f.eps_hi,
                       "minima_before": f.minima_before, "minima_after": f.minima_after}
                      for f in _exits(sw)],
            "fold_source": sw.fold_source, "plot": args.plot}, indent=2, allow_nan=False))
        return 1 if sw.violations else 0
    from rich.table import Table

    from hjplug.cli._console import stdout_console

    curves = [("the deformed model", sw.normalized_entropy)]
    if sw.fixed_normalized_entropy is not None:
        curves.append(("fixed inputs: each head's own response", sw.fixed_normalized_entropy))
    tables = []
    for what, values in curves:
        t = Table(title=f"ε-sweep — {loaded.name}: mean H/log k per block (heads averaged), "
                  f"{what}")
        t.add_column("λ", justify="right")
        for i in sw.layers:
            t.add_column(f"layers.{i}", justify="right")
        for s, lam in enumerate(sw.scales.tolist()):
            row = [f"{lam:.3g}"]
            for i in sw.layers:
                vals = [v for v in values[s, i].tolist() if math.isfinite(v)]
                row.append(f"{sum(vals) / len(vals):.3f}" if vals else "—")
            t.add_row(*row)
        tables.append(t)
    out = stdout_console(*tables)
    for t in tables:
        out.print(t)
    status = "[green]ok[/]" if sw.ok else f"[red]{len(sw.violations)} violations (bug)[/]"
    out.print(f"monotonicity ∂H/∂ε ≥ 0 at fixed inputs: {sw.checked} (row, step) checks — "
              f"{status}")
    if not args.no_folds:
        out.print(f"folds in {sw.fold_source}: {len(sw.folds)}")
        for f in sw.folds:  # folds come from a scan: fold_scan is set
            lam = f.eps / (sw.fold_scan.eps[0] / scales_min(sw))  # type: ignore[union-attr]
            out.print(f"  ε ≈ {f.eps:.4g} (λ ≈ {lam:.4g}): minima {f.minima_before} → "
                      f"{f.minima_after}, smallest |eigenvalue| {f.min_abs_eigenvalue:.3g}")
        exits = _exits(sw)
        if exits:  # a minimum drifting out of the scanned segment: no bifurcation
            out.print(f"minima leaving the scanned segment (not folds): {len(exits)}")
            for f in exits:
                out.print(f"  ε ≈ {f.eps:.4g}: minima {f.minima_before} → {f.minima_after}")
    if args.plot is not None:
        out.print(f"plot: {args.plot}")
    return 1 if sw.violations else 0


def _exits(sw: object) -> tuple:
    """Minima the fold scan saw leave its segment (FoldScan.exits), () without a scan."""
    scan = getattr(sw, "fold_scan", None)
    return tuple(getattr(scan, "exits", ()) or ())


def scales_min(sw: object) -> float:
    return float(sw.scales[0])  # type: ignore[attr-defined]
