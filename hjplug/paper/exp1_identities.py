"""Experiment 1 — the identities of paper-notes §1–§3 (the `hjplug verify` table).

Each row compares an identity (e.g. f_ε(x) + u_ε(x,t) = xᵀΣ⁻¹x/(4t)) against an independent fp64
evaluation; the verdict passes when every max error is within its tolerance. The figure shows
max error / tolerance per identity on a log axis (the pass line is 1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from hjplug.layers import LSELayer
from hjplug.paper._common import RunConfig, entropy_monotonicity, log_grid, new_figure, save_figure
from hjplug.paper.records import ExperimentResult, Verdict

NUMBER, NAME, TITLE = 1, "identities", "Identities of the HJ reading (hjplug verify)"


@dataclass(frozen=True)
class IdentityRow:
    identity: str
    setting: str
    max_error: float
    tolerance: float
    passed: bool


def verdict(rows: tuple[IdentityRow, ...]) -> Verdict:
    """Pass iff every identity's max error ≤ its tolerance (NaN fails) and there is ≥ 1 row."""
    failed = [r.identity for r in rows if not (r.max_error <= r.tolerance)]
    worst = max((r.max_error / r.tolerance for r in rows), default=float("nan"))
    return Verdict(
        passed=bool(rows) and not failed,
        criterion="every identity: max error ≤ tolerance (fp64, independent evaluations)",
        detail=f"{len(rows) - len(failed)}/{len(rows)} hold; worst error/tolerance = {worst:.2g}"
        + (f"; failed: {', '.join(sorted(set(failed)))}" if failed else ""),
    )


def run(cfg: RunConfig) -> ExperimentResult:
    from hjplug.identities import verify

    start = time.perf_counter()
    report = verify(seed=cfg.seed)
    rows = tuple(IdentityRow(r.identity, r.setting, r.max_error, r.tolerance, r.passed)
                 for r in report.rows)

    # entropy monotonicity on a random library LSE layer (N = 16, d = 3), 256 fixed points
    gen = cfg.generator(NUMBER)
    layer = LSELayer(3, 16, 1.0, generator=gen)
    with torch.no_grad():
        layer.W.mul_(3.0)
    x = torch.randn(256, 3, generator=gen, dtype=torch.float64)
    check = entropy_monotonicity(layer.W, layer.b, x, log_grid(1e-3, 1e2, 41))

    fig, (ax,) = new_figure(1, width=8.0, height=0.28 * len(rows) + 1.6)
    floor = 1e-6  # errors below 1e-6·tolerance (incl. exact zeros) are drawn at the floor
    ratios = [max(r.max_error / r.tolerance, floor) for r in rows]
    labels = [f"{r.identity} [{r.setting[:28]}]" for r in rows]
    colors = ["tab:green" if r.passed else "tab:red" for r in rows]
    ax.barh(range(len(rows)), ratios, color=colors, label="max error / tolerance")
    ax.axvline(1.0, color="black", ls="--", label="pass line (error = tolerance)")
    ax.set_xscale("log")
    ax.set_xlim(floor / 2, 10.0)
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("max error / tolerance (dimensionless, log scale; floor 1e-6 incl. exact 0)")
    ax.set_title(f"Experiment 1: identities, seed {report.seed} (fp64)")
    ax.legend(loc="lower right", fontsize=7)
    figure = save_figure(fig, cfg.out_dir / "exp1_identities.png")

    table = tuple((r.identity, r.setting, f"{r.max_error:.2e}", f"{r.tolerance:.0e}",
                   "pass" if r.passed else "FAIL") for r in rows)
    return ExperimentResult(
        number=NUMBER, name=NAME, title=TITLE,
        columns=("identity", "setting", "max error", "tolerance", "verdict"),
        rows=table, figure=str(figure), verdict=verdict(rows), entropy_check=check,
        seconds=time.perf_counter() - start, data=rows,
        notes=("entropy check: random LSELayer N=16, d=3, 256 points, 41 ε in [1e-3, 1e2]",),
    )
