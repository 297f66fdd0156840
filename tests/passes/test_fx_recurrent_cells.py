"""nn.LSTMCell / nn.GRUCell / nn.RNNCell stepped in a Python loop (aten.lstm_cell, gru_cell,
rnn_tanh_cell, rnn_relu_cell) are recurrent blocks, one per cell module: structural, ε = 1,
replayed exactly at ε = 1 and evaluated with gates σ(z/ε), tanh(z/ε) elsewhere (compared with an
fp64 loop written here from the cells' weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug

B, T, DI, DH = 2, 5, 6, 7


class Cells(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(DI, DH)
        self.gru = nn.GRUCell(DI, DH)
        self.rnn = nn.RNNCell(DI, DH)
        self.relu = nn.RNNCell(DI, DH, nonlinearity="relu", bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = g = r = u = x.new_zeros(x.shape[0], DH)
        for t in range(x.shape[1]):
            h, c = self.lstm(x[:, t], (h, c))
            g = self.gru(x[:, t], g)
            r = self.rnn(x[:, t], r)
            u = self.relu(x[:, t], u)
        return torch.cat([h, c, g, r, u], -1)


def _reference(m: Cells, x: torch.Tensor, eps: float) -> torch.Tensor:
    """fp64 loop with deformed gates σ(z/ε), tanh(z/ε) (ReLU unchanged)."""
    x = x.double()
    w = {n: p.detach().double() for n, p in m.named_parameters()}
    sig, th = (lambda z: torch.sigmoid(z / eps)), (lambda z: torch.tanh(z / eps))
    h = c = g = r = u = x.new_zeros(x.shape[0], DH)
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = xt @ w["lstm.weight_ih"].T + w["lstm.bias_ih"] + h @ w["lstm.weight_hh"].T \
            + w["lstm.bias_hh"]
        i, f, gg, o = z.chunk(4, -1)
        c = sig(f) * c + sig(i) * th(gg)
        h = sig(o) * th(c)
        gi = xt @ w["gru.weight_ih"].T + w["gru.bias_ih"]
        gh = g @ w["gru.weight_hh"].T + w["gru.bias_hh"]
        (ir, iz, inn), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
        rr, zz = sig(ir + hr), sig(iz + hz)
        g = (1 - zz) * th(inn + rr * hn) + zz * g
        r = th(xt @ w["rnn.weight_ih"].T + w["rnn.bias_ih"] + r @ w["rnn.weight_hh"].T
               + w["rnn.bias_hh"])
        u = torch.relu(xt @ w["relu.weight_ih"].T + u @ w["relu.weight_hh"].T)
    return torch.cat([h, c, g, r, u], -1)


def test_cells_are_recurrent_blocks() -> None:
    torch.manual_seed(0)
    model = Cells().eval()
    x = torch.randn(B, T, DI, generator=torch.Generator().manual_seed(1))
    report = hjplug.inspect(model, (x,))
    rec = {b.path: b for b in report.blocks if b.kind == "recurrent"}
    assert set(rec) == {"lstm", "gru", "rnn", "relu"}, report.blocks
    for b in rec.values():
        assert b.epsilon == 1.0 and str(b.exactness) == "structural"
        assert b.hamiltonian.params["calls"] == T
    hj = hjplug.convert(model, (x,))
    with torch.no_grad():
        assert torch.equal(hj(x), model(x))
        torch.testing.assert_close(_reference(model, x, 1.0), model(x).double(), atol=1e-5,
                                   rtol=0)
        for eps in (0.5, 2.0):
            for path in rec:
                hj.steps[path].epsilon = eps
            torch.testing.assert_close(hj(x).double(), _reference(model, x, eps), atol=1e-5,
                                       rtol=0)
        for path in rec:
            hj.steps[path].reset_epsilon()
        assert torch.equal(hj(x), model(x))


@pytest.mark.parametrize("eps", [0.0])
def test_cells_hard_gates(eps: float) -> None:
    torch.manual_seed(0)
    model = Cells().eval()
    x = torch.randn(B, T, DI, generator=torch.Generator().manual_seed(1))
    hj = hjplug.convert(model, (x,))
    hj.steps["gru"].epsilon = eps
    with torch.no_grad():
        out = hj(x)
    assert torch.isfinite(out).all()
