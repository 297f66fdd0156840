"""nn.TransformerDecoder given a tgt_mask but no tgt_is_causal: torch.export fails on PyTorch's
data-dependent causal-mask check, capture falls back to symbolic_trace and the attention stays
unread. The near-miss names the flag and both values that make export work: True only for exactly
the causal mask (PyTorch then drops the mask for its own), False for any other mask (applied as
given) — True on a non-causal mask changes the model's outputs."""

from __future__ import annotations

import torch
from torch import nn

import hjplug


class Decoder(nn.Module):
    def __init__(self, causal: bool | None = None) -> None:
        super().__init__()
        self.causal = causal
        layer = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.dec = nn.TransformerDecoder(layer, 2)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:  # tgt: (B, T, 16), memory: (B, S, 16), mask: (T, T)
        return self.dec(tgt, memory, tgt_mask=mask, tgt_is_causal=self.causal)


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mask = torch.zeros(6, 6)
    mask[:, 2] = torch.finfo(torch.float32).min  # key 2 hidden from all but itself: not causal
    mask[2, 2] = 0.0
    return torch.randn(2, 6, 16), torch.randn(2, 4, 16), mask


def _pair(causal: bool | None) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(1)
    base = Decoder().eval()
    other = Decoder(causal).eval()
    other.load_state_dict(base.state_dict())
    return base, other


def test_near_miss_names_both_values_of_tgt_is_causal() -> None:
    report = hjplug.inspect(Decoder().eval(), _inputs())
    assert report.capture == "symbolic_trace"
    misses = [m for m in report.near_misses if m.rule == "attention"]
    assert len(misses) == 1 and misses[0].path == "dec", report.near_misses
    reason = misses[0].reason
    assert "tgt_is_causal=True" in reason and "tgt_is_causal=False" in reason, reason
    assert "exactly the causal mask" in reason and "any other mask" in reason, reason
    assert "pass is_causal=True)" not in reason  # the old, one-sided hint


def test_false_is_right_for_a_non_causal_mask() -> None:
    base, hinted = _pair(False)
    inputs = _inputs()
    report = hjplug.inspect(hinted, inputs)
    assert report.capture == "torch.export" and report.kinds().get("attention") == 4
    with torch.no_grad():
        torch.testing.assert_close(hinted(*inputs), base(*inputs), rtol=0, atol=0)
        converted = hjplug.convert(hinted, inputs)
        torch.testing.assert_close(converted(*inputs), base(*inputs), rtol=1e-5, atol=1e-5)


def test_true_drops_a_non_causal_mask() -> None:
    base, wrong = _pair(True)
    inputs = _inputs()
    with torch.no_grad():
        assert float((wrong(*inputs) - base(*inputs)).abs().max()) > 1e-2


def test_encoder_hint_names_its_own_flag() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
    tgt, _, mask = _inputs()
    miss = [m for m in hjplug.inspect(_Enc(enc), (tgt, mask)).near_misses
            if m.rule == "attention"]
    assert len(miss) == 1, miss
    assert "is_causal=True" in miss[0].reason and "is_causal=False" in miss[0].reason
    assert "tgt_is_causal" not in miss[0].reason


class _Enc(nn.Module):
    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.enc(x, mask=mask)
