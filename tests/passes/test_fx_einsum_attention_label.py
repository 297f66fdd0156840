"""Attention written with torch.einsum (softmax(einsum(q, k)/√d) then einsum with v): the attention
rule leaves a near-miss naming einsum, and the softmax it leaves is not an exact readout of a
linear layer — its logits are a product of two activations, so the lse record is structural."""

from __future__ import annotations

import torch
from torch import nn

import hjplug

B, T, H, DH = 2, 6, 2, 8


class EinsumAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(H * DH, 3 * H * DH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).view(B, T, 3, H, DH).unbind(2)  # [B, T, H, DH] each
        a = torch.einsum("bqhd,bkhd->bhqk", q, k) / DH ** 0.5
        return torch.einsum("bhqk,bkhd->bqhd", a.softmax(-1), v).reshape(B, T, H * DH)


def test_einsum_attention_softmax_is_structural() -> None:
    torch.manual_seed(0)
    model = EinsumAttention().eval()
    x = torch.randn(B, T, H * DH, generator=torch.Generator().manual_seed(1))
    report = hjplug.inspect(model, (x,))
    (lse,) = [b for b in report.blocks if b.kind == "lse"]
    assert str(lse.exactness) == "structural", lse
    assert "einsum" in lse.notes and "not a readout of a linear layer" in lse.notes
    assert any(m.rule == "attention" and "einsum" in m.reason for m in report.near_misses)
    with torch.no_grad():
        assert torch.equal(hjplug.convert(model, (x,))(x), model(x))
