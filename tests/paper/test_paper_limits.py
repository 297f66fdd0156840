"""Verdict checks that must fail on impossible values (a normalised entropy above 1)."""

from __future__ import annotations

import math

from hjplug.paper import exp5_phase as e5


def _curve(h_particle: float, h_wave: float) -> e5.PhaseCurve:
    return e5.PhaseCurve(label="p", x=(0.0, 0.0), eps=(1e-4, 1.0, 100.0),
                         normalized_entropy=(h_particle, 0.5, h_wave), eps_half=1.0,
                         eps_star=0.25, n_tied=1, n_atoms=16, particle_eps=1e-4,
                         particle_entropy=h_particle)


def test_phase_wave_limit_rejects_entropy_above_one() -> None:
    # H/log N ≤ 1 always; 1/ln 2 ≈ 1.443 is what an entropy in bits divided by log N (nats)
    # gives at the wave end. It must not count as "reached the wave limit".
    assert e5.verdict((_curve(0.0, 1.0),)).passed
    assert not e5.verdict((_curve(0.0, 1 / math.log(2)),)).passed
    assert not e5.verdict((_curve(0.0, 1.06),)).passed


def test_recovery_verdict_needs_deviation_near_zero_not_only_shrinking() -> None:
    from hjplug.paper import exp2_recovery as e2

    eps = (0.5, 0.1, 0.04)
    assert e2.verdict(eps, (0.4, 0.03, 0.003)).passed
    # fitted to a wrong target (u₀ ≡ 1 instead of the Hopf–Lax data of |y|) D still shrinks,
    # 1.15 → 0.658 → 0.585, but the atoms are not recovered: that must fail
    assert not e2.verdict(eps, (1.15, 0.658, 0.585)).passed
