"""hjplug.deform / hjplug.instrument.deform / hjplug.sweep on a converted model with no
attention block: one clear error for every λ (λ = 1 included — a silent no-op would hide that
nothing was read as attention) saying what was expected, what was found and what to do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug
from hjplug.errors import HJPlugError


class Readout(nn.Module):  # a residual MLP and an LSE readout, no attention
    def __init__(self) -> None:
        super().__init__()
        self.mlp, self.head = nn.Linear(6, 6), nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.head(x + self.mlp(x)), -1)


@pytest.fixture(scope="module")
def converted() -> tuple[nn.Module, torch.Tensor]:
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    return hjplug.convert(Readout().eval(), (x,)), x


@pytest.mark.parametrize("call", [
    lambda hj, x, lam: hjplug.deform(hj, lam),
    lambda hj, x, lam: hjplug.instrument.deform(hj, lam).__enter__(),
    lambda hj, x, lam: hjplug.sweep(hj, (x,), scales=[lam, 2.0]),
], ids=["deform", "instrument.deform", "sweep"])
@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_no_attention_is_one_clear_error(converted, call, lam: float) -> None:
    hj, x = converted
    with pytest.raises(HJPlugError) as info:
        call(hj, x, lam)
    msg = str(info.value)
    assert "expected an hjplug.convert result with attention blocks" in msg
    assert "found 1 residual, 1 lse steps in a converted Readout" in msg
    assert "λ, 1 included" in msg and "near_misses" in msg and "set_epsilon" in msg
    assert all(s.at_identified for s in hj.steps.values())  # nothing changed
