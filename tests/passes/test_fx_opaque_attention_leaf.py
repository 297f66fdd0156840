"""nn.TransformerEncoder with a causal float mask: torch.export fails on its data-dependent
causal-mask check, symbolic_trace keeps the encoder as one opaque leaf call — its attention
blocks are reported as near-misses with that reason, never silently absent."""

from __future__ import annotations

import torch
from torch import nn

import hjplug


class CausalEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, causal: bool | None = None
                ) -> torch.Tensor:  # x: (B, T, 16), mask: (T, T) additive
        return self.enc(x, mask=mask, is_causal=causal)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mask = nn.Transformer.generate_square_subsequent_mask(6).nan_to_num()  # finfo.min, not −inf
    return torch.randn(2, 6, 16), mask


def test_opaque_leaf_with_attention_is_a_near_miss() -> None:
    report = hjplug.inspect(CausalEncoder().eval(), _inputs())
    assert report.capture == "symbolic_trace"
    misses = [m for m in report.near_misses if m.rule == "attention"]
    assert len(misses) == 1 and misses[0].path == "enc", report.near_misses
    assert "2 nn.MultiheadAttention" in misses[0].reason
    assert "opaque" in misses[0].reason


def test_the_hinted_fix_recognises_the_blocks() -> None:
    model = CausalEncoder().eval()

    class Hinted(nn.Module):  # is_causal=True: no data-dependent mask check, export succeeds
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.inner(x, mask, True)

    assert hjplug.inspect(Hinted().eval(), _inputs()).kinds().get("attention") == 2
