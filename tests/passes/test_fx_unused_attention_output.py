"""A model returning only nn.MultiheadAttention's attention weights: the attention block is
recognised, but its output (weights · v) reaches no model output, so an HJ step in its place would
never run and record nothing. The report says so (a near-miss naming the block and the reason, and
a note on the block) instead of a silent step; the outputs stay the model's."""

from __future__ import annotations

import torch
from torch import nn

import hjplug


class WeightsOnly(nn.Module):
    def __init__(self, weights_only: bool = True) -> None:
        super().__init__()
        self.weights_only = weights_only
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 16)
        out, weights = self.mha(x, x, x, need_weights=True)  # weights: (B, T, T), head mean
        return weights if self.weights_only else out


def _model(weights_only: bool = True) -> tuple[nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    return WeightsOnly(weights_only).eval(), (torch.randn(2, 5, 16),)


def _unused(report: object) -> list:
    return [m for m in report.near_misses  # type: ignore[attr-defined]
            if m.rule == "attention" and "never runs" in m.reason]


def test_unused_attention_output_is_reported() -> None:
    model, inputs = _model()
    report = hjplug.inspect(model, inputs)
    misses = _unused(report)
    assert len(misses) == 1, report.near_misses
    assert misses[0].path == "mha"
    assert "attention weights" in misses[0].reason and "nothing is recorded" in misses[0].reason
    (block,) = [b for b in report.blocks if b.kind == "attention"]
    assert "never runs" in block.notes


def test_converted_outputs_stay_correct_and_no_dead_step() -> None:
    model, inputs = _model()
    hj = hjplug.convert(model, inputs)
    with torch.no_grad():
        torch.testing.assert_close(hj(*inputs), model(*inputs), rtol=0, atol=0)
    assert not [s for s in hj.steps.values() if s.spec.kind == "attention"]
    (block,) = [s for s in hj.specs() if s.kind == "attention"]
    assert "never runs" in block.notes


def test_used_attention_output_gets_a_step_and_no_such_near_miss() -> None:
    model, inputs = _model(weights_only=False)
    assert not _unused(hjplug.inspect(model, inputs))
    hj = hjplug.convert(model, inputs)
    assert [s for s in hj.steps.values() if s.spec.kind == "attention"]
