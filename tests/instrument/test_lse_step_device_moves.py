"""An HJLSEStep must not shadow nn.Module._apply: `.to(dtype)` / `.double()` of a converted model
with a softmax readout moves its parameters, and the output then equals fp64 softmax(W x + b)."""

from __future__ import annotations

import torch
from torch import nn

import hjplug


class _Readout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.lin(x), -1)


def test_converted_lse_model_moves_to_fp64() -> None:
    torch.manual_seed(0)
    model, x = _Readout().eval(), torch.randn(3, 4)
    hj = hjplug.convert(model, (x,))
    assert any(type(s).__name__ == "HJLSEStep" for s in hj.steps.values())
    hj.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in hj.parameters())
    assert next(model.parameters()).dtype == torch.float32 or hj is model
    xd = x.double()
    want = torch.softmax(xd @ model.lin.weight.double().T + model.lin.bias.double(), -1)
    with torch.no_grad():
        got = hj(xd)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
