"""`hjplug verify`: every identity holds on fresh data, and a broken formula is caught."""

from __future__ import annotations

import json

import pytest
import torch

import hjplug
from hjplug.cli import main
from hjplug.identities import CHECKS


def test_every_identity_holds_on_fresh_data(seed: int) -> None:
    report = hjplug.verify(seed=seed)
    failed = [(r.identity, r.setting, r.max_error) for r in report.rows if not r.passed]
    assert not failed, f"seed {seed}: {failed}"
    assert len(report.rows) >= len(CHECKS)
    assert all(r.max_error >= 0 for r in report.rows)


def test_a_wrong_formula_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the ε factor of u: identity 1 and the PDE rows must fail, the others still pass."""
    real = hjplug.math.hopf_cole

    def broken(x, y, g, t, eps, metric=None, normalized=False):
        return real(x, y, g, t, eps, metric, normalized) / eps

    monkeypatch.setattr(hjplug.math, "hopf_cole", broken)
    report = hjplug.verify(seed=0)
    failed = {r.identity for r in report.rows if not r.passed}
    assert "f_ε + u_ε = xᵀΣ⁻¹x/(4t)" in failed
    assert any(name.startswith("PDE residual") for name in failed)
    assert "LSE_ε(z) = ⟨π,z⟩ + ε·H(π)" not in failed
    assert not report.passed


def test_wrong_entropy_derivative_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hjplug.math.entropy_eps_derivative
    monkeypatch.setattr(hjplug.math, "entropy_eps_derivative",
                        lambda z, eps, dim=-1: real(z, eps, dim) * eps)  # Var/ε² instead of /ε³
    report = hjplug.verify(seed=1)
    failed = {r.identity for r in report.rows if not r.passed}
    assert failed == {"∂H/∂ε = Var_π(z)/ε³ (vs autograd)"}


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["verify", "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed"] == 5 and data["passed"] is True
    assert {"identity", "setting", "max_error", "tolerance", "passed"} <= set(data["rows"][0])

    monkeypatch.setattr(hjplug.math, "tanh_gibbs", lambda z: torch.tanh(z) + 1e-6)
    assert main(["verify", "--seed", "5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "identities failed" in out
