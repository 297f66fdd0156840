"""FX attention steps in the tropical limit (ε = 0): the recorded statistics are those of the
hard max — value = ε₀·max_j z₀ (the limit of ε·lse), H = log #ties, π one-hot — on both the
statistics path and the scores path (weights requested). Before: value NaN / 0 and, on the
scores path, the entropy of ε₀'s softmax."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug

B, S, H, DH = 2, 5, 2, 8


class Sdpa(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(H * DH, 3 * H * DH)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.qkv(x).view(x.shape[0], S, 3, H, DH).permute(2, 0, 3, 1, 4))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(x.shape[0], S, H * DH)


@pytest.mark.parametrize("stats", [("entropy", "lse"), ("entropy", "lse", "weights")])
def test_tropical_statistics(stats: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    m = Sdpa().eval().double()
    x = torch.randn(B, S, H * DH, dtype=torch.float64)
    mask = torch.ones(B, 1, S, S, dtype=torch.bool)
    mask[1, ..., 3:] = False  # batch 1: keys 3, 4 removed
    hj = hjplug.convert(m, (x, mask))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad(), hjplug.instrument.deform(hj, 0.0), hjplug.instrument(
                hj, stats=stats) as rec:
            hj(x, mask)
    q, k, _ = m.heads(x)
    eps0 = math.sqrt(DH)
    z0 = ((q @ k.transpose(-1, -2)).detach() / eps0).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(rec["layers.0.attn.value"].double(), eps0 * z0.amax(-1),
                               rtol=1e-6, atol=1e-6)
    assert torch.all(rec["layers.0.attn.entropy"] == 0)  # no ties in random logits
    assert torch.equal(rec["layers.0.attn.keys"].long(),
                       torch.tensor([S, 3]).view(B, 1, 1).expand(B, H, S))
    if "weights" in stats:
        want = F.one_hot(z0.argmax(-1), S).to(rec["layers.0.attn.weights"].dtype)
        assert torch.equal(rec["layers.0.attn.weights"], want)
