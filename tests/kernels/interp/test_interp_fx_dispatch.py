"""An FX-converted attention step dispatches its statistics to the Triton hj_attention kernel
(HJPLUG_KERNEL=triton under TRITON_INTERPRET=1 stands in for CUDA) and agrees with the
reference twin's run of the same step. Collected only in the interpreter subprocess."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)
pytest.importorskip("triton")

import hjplug  # noqa: E402


class GQACausal(nn.Module):
    """4 query heads over 2 key/value heads, head dim 32, causal SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.kv, self.o = nn.Linear(48, 128), nn.Linear(48, 128), nn.Linear(128, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        q = self.q(x).view(B, S, 4, 32).transpose(1, 2)  # [B, 4, S, 32]
        k, v = self.kv(x).view(B, S, 2, 2, 32).permute(2, 0, 3, 1, 4)  # [B, 2, S, 32] each
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o(a.transpose(1, 2).reshape(B, S, 128))


def _run(hj: nn.Module, x: torch.Tensor, mode: str, monkeypatch) -> tuple:
    monkeypatch.setenv("HJPLUG_KERNEL", mode)
    with torch.no_grad(), hjplug.instrument(hj, stats=("entropy", "lse", "topk"), topk=3) as r:
        out = hj(x)
    return out, r


def test_fx_step_stats_from_the_triton_kernel(monkeypatch) -> None:
    torch.manual_seed(0)
    model = GQACausal().eval()
    x = torch.randn(2, 37, 48)
    hj = hjplug.convert(model, (x,))
    out_t, rt = _run(hj, x, "triton", monkeypatch)
    out_r, rr = _run(hj, x, "reference", monkeypatch)
    assert any("triton path" in n for n in rt.notes), rt.notes
    assert any("reference path" in n for n in rr.notes), rr.notes
    torch.testing.assert_close(out_t, out_r, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(out_t, model(x), rtol=2e-5, atol=2e-5)
    for s in ("entropy", "lse", "topk_weights"):
        torch.testing.assert_close(rt[f"layers.0.attn.{s}"], rr[f"layers.0.attn.{s}"],
                                   rtol=2e-5, atol=2e-5)
    assert torch.equal(rt["layers.0.attn.keys"][0, 0], torch.arange(1, 38))  # causal k_i = i + 1
