"""instrument on FX-converted recurrent blocks: the σ gates of a fused one-layer LSTM / GRU step
are recorded as on the original module (gates.{i}.{gate}.*); a layout that is not instrumented
(bidirectional / multi-layer, hand-written cell) is named in the notes, never silently empty."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug


class Seq(nn.Module):
    def __init__(self, cell: type[nn.Module], **kw: object) -> None:
        super().__init__()
        self.rnn = cell(5, 7, batch_first=True, **kw)
        self.head = nn.Linear(7 * (2 if kw.get("bidirectional") else 1), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 5)
        return self.head(self.rnn(x)[0])  # (B, T, 3)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_fused_gates_match_the_original_module(cell: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model, x = Seq(cell).eval(), torch.randn(2, 6, 5)
    hj = hjplug.convert(model, (x,))
    stats = ("entropy", "lse")
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as fx, \
            hjplug.instrument(model, stats=stats) as ref:
        out = hj(x)
        model(x)
    gates = sorted(k for k in ref if k.startswith("gates.0."))
    assert gates and sorted(k for k in fx if k.startswith("gates.")) == gates
    for k in gates:
        torch.testing.assert_close(fx[k], ref[k], atol=1e-6, rtol=1e-6)
    assert {fx.paths[k.rsplit(".", 1)[0]] for k in gates} == {"rnn"}
    torch.testing.assert_close(out, model(x), atol=0, rtol=0)
    assert not any(s._observers for s in hj.steps.values()) and not any(
        s._forward_hooks for s in hj.steps.values())


def test_layouts_not_instrumented_are_noted() -> None:
    torch.manual_seed(0)
    model, x = Seq(nn.LSTM, num_layers=2, bidirectional=True).eval(), torch.randn(2, 6, 5)
    hj = hjplug.convert(model, (x,))
    with torch.no_grad(), hjplug.instrument(hj) as rec:
        hj(x)
    assert not [k for k in rec if k.startswith("gates.")]
    assert any("gates.0 (rnn)" in n and "not instrumented" in n for n in rec.notes), rec.notes
