"""instrument on FX-converted nn.LSTMCell / GRUCell loops: the σ gates of every *_cell step call
are recorded (gates.{i}.{gate}.*, [B·T, U]) as for the original cell, and equal an independent fp64
evaluation of the cell at ε: lse = softplus(z/ε), H = softplus(z/ε) − (z/ε)·σ(z/ε), value = ε·lse.
An RNN cell has no σ gate: it is noted as such, not as an uninstrumented layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug

B, T, D, U = 2, 4, 5, 7


class Loop(nn.Module):
    def __init__(self, cell: type[nn.Module]) -> None:
        super().__init__()
        self.cell = cell(D, U)
        self.head = nn.Linear(U, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D)
        h: object = None
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h[0] if isinstance(h, tuple) else h)
        return self.head(torch.stack(outs, 1))


def _reference(cell: nn.Module, x: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """fp64 loop of the cell with gates σ(z/ε), tanh(z/ε): σ-gate pre-activations z [T·B, U]."""
    w_ih, w_hh = cell.weight_ih.double(), cell.weight_hh.double()
    b_ih, b_hh = cell.bias_ih.double(), cell.bias_hh.double()
    h = torch.zeros(B, U, dtype=torch.float64)
    c = torch.zeros_like(h)
    zs: dict[str, list[torch.Tensor]] = {}
    for t in range(T):
        gi, gh = x[:, t].double() @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if isinstance(cell, nn.LSTMCell):
            i, f, g, o = (gi + gh).chunk(4, -1)
            for name, z in (("input", i), ("forget", f), ("output", o)):
                zs.setdefault(name, []).append(z)
            c = torch.sigmoid(f / eps) * c + torch.sigmoid(i / eps) * torch.tanh(g / eps)
            h = torch.sigmoid(o / eps) * torch.tanh(c / eps)
        else:
            (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
            zs.setdefault("reset", []).append(ir + hr)
            zs.setdefault("update", []).append(iz + hz)
            r, u = torch.sigmoid((ir + hr) / eps), torch.sigmoid((iz + hz) / eps)
            h = (1 - u) * torch.tanh((in_ + r * hn) / eps) + u * h
    return {k: torch.cat(v) for k, v in zs.items()}


@pytest.mark.parametrize("eps", [1.0, 0.7])
@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell])
def test_cell_gates_match_fp64(cell: type[nn.Module], eps: float) -> None:
    torch.manual_seed(0)
    model, x = Loop(cell).eval(), torch.randn(B, T, D)
    hj = hjplug.convert(model, (x,))
    (step,) = hj.steps.values()
    step.epsilon = eps
    stats = ("entropy", "lse")
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as fx, \
            hjplug.instrument(model, stats=stats) as ref:
        hj(x)
        model(x)
    assert not any("not instrumented" in n for n in fx.notes), fx.notes
    gates = sorted(k for k in ref if k.startswith("gates.0."))
    assert gates and sorted(k for k in fx if k.startswith("gates.")) == gates
    for name, z in _reference(model.cell, x, eps).items():
        zz = z / eps
        sp = F.softplus(zz)
        ent = sp - zz * torch.sigmoid(zz)
        pre = f"gates.0.{name}"
        torch.testing.assert_close(fx[f"{pre}.lse"].double(), sp, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fx[f"{pre}.entropy"].double(), ent, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fx[f"{pre}.value"].double(), eps * sp, atol=1e-5, rtol=1e-5)
        assert torch.all(fx[f"{pre}.keys"] == 2)
        if eps == 1.0:  # same cell inputs: the original module's record
            for k in gates:
                if k.startswith(pre + "."):
                    torch.testing.assert_close(fx[k], ref[k], atol=1e-6, rtol=1e-6)
    assert fx.paths["gates.0.update" if cell is nn.GRUCell else "gates.0.input"] == "cell"
    assert not any(s._observers for s in hj.steps.values()) and not any(
        s._forward_hooks for s in hj.steps.values())


def test_rnn_cell_is_noted_as_gateless() -> None:
    torch.manual_seed(0)
    model, x = Loop(nn.RNNCell).eval(), torch.randn(B, T, D)
    hj = hjplug.convert(model, (x,))
    with torch.no_grad(), hjplug.instrument(hj) as rec:
        hj(x)
    assert not [k for k in rec if k.startswith("gates.")]
    assert not any("packed, multi-layer" in n for n in rec.notes), rec.notes
    assert any("gates.0 (cell)" in n and "no σ gate" in n for n in rec.notes), rec.notes
