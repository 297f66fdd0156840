"""Selective scans written in plain torch: the decay A = −softplus(θ) (as well as −exp(A_log))
is an SSM block, its softplus is the decay, not an activation; a scan whose ZOH exp(Δ·A) has a
softplus time step but a decay in no form the rule reads (here A a plain parameter) is reported
as a near-miss with the reason, never silently skipped; outputs are unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug

B, T, D, N = 2, 5, 4, 3


class Scan(nn.Module):
    def __init__(self, decay: str) -> None:
        super().__init__()
        self.decay = decay
        self.dt, self.bp, self.cp = nn.Linear(D, D), nn.Linear(D, N), nn.Linear(D, N)
        self.a = nn.Parameter(torch.randn(D, N))

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # u [B, T, D]
        delta = F.softplus(self.dt(u))  # Δ [B, T, D]
        a = {"exp": lambda: -torch.exp(self.a), "softplus": lambda: -F.softplus(self.a),
             "plain": lambda: self.a}[self.decay]()  # A [D, N]
        bm, cm = self.bp(u), self.cp(u)  # [B, T, N]
        h = u.new_zeros(u.shape[0], D, N)
        ys = []
        for t in range(u.shape[1]):
            h = torch.exp(delta[:, t, :, None] * a) * h \
                + delta[:, t, :, None] * bm[:, t, None, :] * u[:, t, :, None]
            ys.append((h * cm[:, t, None, :]).sum(-1))
        return torch.stack(ys, 1)  # [B, T, D]


def _x() -> torch.Tensor:
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("decay", ["exp", "softplus"])
def test_decay_forms_are_ssm_blocks(decay: str) -> None:
    torch.manual_seed(0)
    model, x = Scan(decay).eval(), _x()
    report = hjplug.inspect(model, (x,))
    (ssm,) = [b for b in report.blocks if b.kind == "ssm"]
    assert ssm.hamiltonian.params["selective"] and ssm.hamiltonian.params["scan_steps"] == T
    assert f"aten.{decay}" in ssm.evidence and str(ssm.exactness) == "structural"
    assert not [b for b in report.blocks if b.kind == "activation"]  # Δ and A: in the block
    with torch.no_grad():
        assert torch.equal(hjplug.convert(model, (x,))(x), model(x))


def test_unread_decay_is_a_near_miss() -> None:
    torch.manual_seed(0)
    model, x = Scan("plain").eval(), _x()
    report = hjplug.inspect(model, (x,))
    assert not [b for b in report.blocks if b.kind == "ssm"]
    misses = [m for m in report.near_misses if m.rule == "ssm"]
    assert misses and "decay" in misses[0].reason and "softplus" in misses[0].reason
    with torch.no_grad():
        assert torch.equal(hjplug.convert(model, (x,))(x), model(x))
