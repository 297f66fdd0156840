"""`hjplug paper`: the paper's quantitative claims, checked with hjplug.math and LSELayer.

    1 identities   the `hjplug verify` table
    2 recovery     initial data (y_j, g_j) recovered from a trained layer; D(ε) shrinks as ε → 0
    3 quadrature   N-atom layer = N-point quadrature of Hopf–Cole; error ∝ N^{−1/d}
    4 robustness   max ‖∇²f‖ ≤ max_j ‖W_j‖²/ε on trained layers
    5 phase        entropy vs ε (particle → wave) with ε* = N^{−1/d}
    6 folds        fold bifurcations of x ↦ H(π(x; ε)) in 1-D and 2-D

Every experiment prints a table, writes a PNG, ends with a verdict, and checks that H(π(x; ε)) is
non-decreasing in ε at every fixed x it uses.
"""

from __future__ import annotations

from hjplug.paper.records import EntropyCheck, ExperimentResult, PaperReport, Verdict
from hjplug.paper.runner import EXPERIMENTS, resolve_experiments, run_paper

__all__ = [
    "EXPERIMENTS",
    "EntropyCheck",
    "ExperimentResult",
    "PaperReport",
    "Verdict",
    "resolve_experiments",
    "run_paper",
]
