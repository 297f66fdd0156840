"""Each experiment's verdict fails on wrong numbers (and passes on right ones)."""

from __future__ import annotations

import math

import torch

from hjplug.paper import exp1_identities as e1
from hjplug.paper import exp2_recovery as e2
from hjplug.paper import exp3_quadrature as e3
from hjplug.paper import exp4_robustness as e4
from hjplug.paper import exp5_phase as e5
from hjplug.paper import exp6_folds as e6
from hjplug.paper._common import entropy_monotonicity, log_grid, loglog_slope


def test_identities_verdict() -> None:
    ok = e1.IdentityRow("a", "s", 1e-15, 1e-12, True)
    assert e1.verdict((ok, ok)).passed
    assert not e1.verdict((ok, e1.IdentityRow("b", "s", 2e-12, 1e-12, False))).passed
    assert not e1.verdict((e1.IdentityRow("c", "s", math.nan, 1e-12, False),)).passed
    assert not e1.verdict(()).passed


def test_recovery_verdict_needs_shrinking_deviation() -> None:
    eps = (0.5, 0.1, 0.04)
    assert e2.verdict(eps, (0.4, 0.03, 0.003)).passed
    assert not e2.verdict(eps, (0.4, 0.03, 0.05)).passed  # grows again at the smallest ε
    assert not e2.verdict(eps, (0.01, 0.03, 0.05)).passed  # grows as ε → 0
    assert not e2.verdict(eps, (0.4, 0.4, 0.1)).passed  # not strict
    assert not e2.verdict(eps, (0.4, math.nan, 0.1)).passed
    # order of the inputs does not matter, only the ε values
    assert e2.verdict((0.04, 0.5, 0.1), (0.003, 0.4, 0.03)).passed


def _rate(d: int, slope: float, ref_err: float = 1e-9) -> e3.RateFit:
    return e3.RateFit(d, (10, 100, 1000), (0.1, 0.05, 0.02), slope, 0.0, -1.0 / d, ref_err)


def test_quadrature_verdict_compares_the_slope_with_minus_one_over_d() -> None:
    assert e3.verdict((_rate(1, -1.05), _rate(2, -0.55), _rate(4, -0.24))).passed
    assert not e3.verdict((_rate(1, -0.5), _rate(2, -0.55))).passed  # d=1 slope off by 50%
    assert not e3.verdict((_rate(4, -0.5),)).passed  # −2/d is not −1/d
    assert not e3.verdict((_rate(1, -1.0, ref_err=0.01),)).passed  # reference too coarse
    assert not e3.verdict(()).passed


def test_loglog_slope_recovers_a_known_power_law() -> None:
    n = torch.tensor([4.0, 16.0, 64.0, 256.0], dtype=torch.float64)
    slope, icpt = loglog_slope(n, 3.0 * n**-0.7)
    assert abs(slope + 0.7) < 1e-12 and abs(icpt - math.log(3.0)) < 1e-12


def _rob(ratio: float, ad: float = 1e-15) -> e4.RobustnessRow:
    return e4.RobustnessRow(0.1, 0.01, ratio * 10, 10.0, ratio, ratio, ad)


def test_robustness_verdict_fails_above_the_bound() -> None:
    assert e4.verdict((_rob(0.3), _rob(0.99))).passed
    assert not e4.verdict((_rob(0.3), _rob(1.2))).passed
    assert not e4.verdict((_rob(0.3, ad=1e-4),)).passed  # closed form disagrees with autograd
    assert not e4.verdict((_rob(math.nan),)).passed


def _curve(first: float, last: float, tied: int = 1) -> e5.PhaseCurve:
    return e5.PhaseCurve("p", (0.0, 0.0), (1e-3, 1.0, 100.0), (first, 0.5, last), 0.1, 0.25,
                         tied, 16, 1e-4, first)


def test_phase_verdict_needs_both_limits() -> None:
    assert e5.verdict((_curve(0.01, 0.99),)).passed
    assert not e5.verdict((_curve(0.5, 0.99),)).passed  # no particle regime
    assert not e5.verdict((_curve(0.01, 0.6),)).passed  # no wave regime
    assert e5.verdict((_curve(0.25, 0.99, tied=2),)).passed  # a tie: H → log 2 = ¼·log 16
    assert not e5.verdict((_curve(0.01, 0.99, tied=2),)).passed


def _panel(**kw) -> e6.FoldPanel:
    base = dict(label="1-D", dim=1, eps=(0.1, 0.2, 0.3), n_minima=(2, 1, 1), n_saddles=(0, 0, 0),
                n_maxima=(3, 2, 2), grid_minima=(2, 1, 1), grid_maxima=(3, 2, 2),
                merges=(e6.Merge(0.15, 0.14999, 0.15001, 2, 1, 1e-3, (0.0,), 0.1, 0.2),),
                monotone_violations=0)
    base.update(kw)
    return e6.FoldPanel(**base)


def test_folds_verdict_catches_each_inconsistency() -> None:
    assert e6.verdict((_panel(),)).passed
    assert not e6.verdict((_panel(n_minima=(1, 2, 1), grid_minima=(1, 2, 1),
                                  n_maxima=(2, 3, 2), grid_maxima=(2, 3, 2)),)).passed
    assert not e6.verdict((_panel(grid_minima=(2, 2, 1)),)).passed  # scan ≠ dense grid
    assert not e6.verdict((_panel(n_maxima=(3, 3, 2), grid_maxima=(3, 3, 2)),)).passed  # Morse
    assert not e6.verdict((_panel(merges=()),)).passed  # a lost minimum not listed
    two = e6.Merge(0.15, 0.149, 0.151, 3, 1, 1e-3, (0.0,), 0.1, 0.2)
    assert not e6.verdict((_panel(n_minima=(3, 1, 1), grid_minima=(3, 1, 1),
                                  n_maxima=(4, 2, 2), grid_maxima=(4, 2, 2),
                                  merges=(two,)),)).passed  # unresolved double merge
    assert not e6.verdict((_panel(monotone_violations=3),)).passed
    stiff = e6.Merge(0.15, 0.14999, 0.15001, 2, 1, 0.3, (0.0,), 0.1, 0.2)  # |λ| grew at the fold
    assert not e6.verdict((_panel(merges=(stiff,)),)).passed
    unnarrowed = e6.Merge(0.15, 0.1, 0.151, 2, 1, 0.3, (0.0,), 0.1, 0.2)  # eps_lo = grid ε
    assert e6.verdict((_panel(merges=(unnarrowed,)),)).passed
    wide = e6.Merge(0.15, 0.14, 0.16, 2, 1, 0.3, (0.0,), 0.1, 0.2)  # bracket not at the fold
    assert e6.verdict((_panel(merges=(wide,)),)).passed
    # 2-D: the scan's non-flat minima are what the dense count is compared with
    flat = _panel(dim=2, label="2-D", n_minima=(3, 1, 1), n_maxima=(0, 0, 0), grid_maxima=None,
                  merges=(two,), basins=(2, 1, 1))
    assert not e6.verdict((flat,)).passed  # still the unresolved double merge
    ok2 = _panel(dim=2, label="2-D", n_minima=(3, 2, 2), n_maxima=(0, 0, 0), grid_maxima=None,
                 basins=(2, 1, 1))
    assert e6.verdict((ok2,)).passed
    assert not e6.verdict((_panel(dim=2, label="2-D", n_minima=(3, 2, 2), n_maxima=(0, 0, 0),
                                  grid_maxima=None, basins=(2, 2, 1)),)).passed


def test_entropy_check_catches_an_entropy_that_falls_with_eps(monkeypatch) -> None:
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    eps = log_grid(1e-2, 1e1, 15)
    assert entropy_monotonicity(W, b, x, eps).passed
    from hjplug import math as hm

    real = hm.entropy
    monkeypatch.setattr(hm, "entropy", lambda z, e=1.0, dim=-1: real(z, 1.0 / e, dim))
    broken = entropy_monotonicity(W, b, x, eps)
    assert not broken.passed and broken.violations > 0 and broken.max_drop > 0
