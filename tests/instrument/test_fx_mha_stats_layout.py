"""nn.MultiheadAttention with need_weights=True runs attention on 3-D [B·H, S, d] tensors: its
statistics are recorded in the documented [B, H, Sq] layout (H read from the [S, B, E] → [S, B·H,
d] view, noted in the record), equal to the entropies of the weights MHA returns, in the kernel
path and in the explicit (curvature / weights) path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hjplug

S, B, D, H = 5, 3, 16, 2


class Weights(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(D, H, batch_first=batch_first)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn(x, x, x, need_weights=True, average_attn_weights=False)


@pytest.mark.parametrize("stats", [("entropy", "lse", "topk"), ("entropy", "curvature", "weights")],
                         ids=["kernel", "explicit"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_stats_are_batch_head_query(batch_first: bool, stats: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = Weights(batch_first).eval()
    x = torch.randn((B, S, D) if batch_first else (S, B, D))
    hj = hjplug.convert(model, (x,))
    (step,) = hj.steps.values()
    assert step.spec.hamiltonian.params["heads_per_batch"] == H
    assert "statistics recorded as [B, H, Sq] with H = 2" in step.spec.notes
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as rec:
        _, w = hj(x)  # π [B, H, S, S]
    ent = -(w.double() * w.double().clamp_min(1e-300).log()).sum(-1)  # [B, H, S]
    got = rec["layers.0.attn.entropy"]
    assert got.shape == (B, H, S) and rec["layers.0.attn.keys"].shape == (B, H, S)
    assert rec["layers.0.attn.epsilon"].shape == (H,)
    torch.testing.assert_close(got.double(), ent, atol=1e-5, rtol=0)
    if "weights" in stats:
        torch.testing.assert_close(rec["layers.0.attn.weights"], w, atol=1e-6, rtol=0)
        assert rec["layers.0.attn.curvature"].shape == (B, H, S)
    else:
        assert rec["layers.0.attn.topk_weights"].shape[:3] == (B, H, S)
    assert [h.head for h in rec.summary().heads] == list(range(H))
