"""A softmax over attention scores the attention rule leaves (Gemma-2 soft-capping: the scores
pass through tanh) is a structural LSE block, not an exact readout "atoms = rows of W": its
logits z = c·tanh(q·kᵀ/c) are not affine in the input. A real readout stays exact."""

from __future__ import annotations

import math

import hjzoo
import torch
from torch import nn

import hjplug


class SoftCapped(nn.Module):  # Gemma-2's eager attention, one head group
    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.head = nn.Linear(8, 24), nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)  # (B, T, 8) each
        z = q @ k.transpose(-1, -2) / math.sqrt(8)
        z = torch.tanh(z / 50.0) * 50.0
        y = torch.softmax(z, dim=-1) @ v
        return torch.log_softmax(self.head(y), -1)  # a readout of W: exact


def test_softcapped_scores_are_structural_not_a_readout() -> None:
    torch.manual_seed(0)
    model, x = SoftCapped().eval(), torch.randn(2, 5, 8)
    report = hjplug.inspect(model, (x,))
    lse = {b.hamiltonian.params["op"]: b for b in report.blocks if b.kind == "lse"}
    soft, head = lse["softmax"], lse["log_softmax"]
    assert soft.exactness == "structural", soft
    assert "rows of W" in soft.hamiltonian.formula and "not affine" in soft.hamiltonian.formula
    assert "attention scores" in soft.notes and "aten.tanh" in soft.notes
    assert head.exactness == "exact" and "attention" not in head.notes
    assert any(m.rule == "attention" and "aten.tanh" in m.reason for m in report.near_misses)
    hj = hjplug.convert(model, (x,))
    with torch.no_grad(), hjplug.instrument(hj, stats="entropy") as rec:
        torch.testing.assert_close(hj(x), model(x))
    assert any("readout.lse0" in n and "not a readout" in n for n in rec.notes), rec.notes
    assert not any("readout.lse1" in n for n in rec.notes)


def test_gemma2_eager_softcapping_is_structural() -> None:
    model, inputs = hjzoo._decoder("gemma2", "eager", head_dim=8, attn_logit_softcapping=50.0,
                                   final_logit_softcapping=None, sliding_window=4)
    report = hjplug.inspect(model, inputs)
    soft = [b for b in report.blocks if b.kind == "lse"]
    assert len(soft) == 2 and all(b.exactness == "structural" for b in soft), soft
    assert all("aten.tanh" in b.notes for b in soft)
