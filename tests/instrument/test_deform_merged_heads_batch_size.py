"""Per-head ε on a 3-D [B·H, S, d] attention layout is one ε per head (H values), tiled over the
*runtime* batch (ε_{b·H+h} = ε_h): an HJAttentionStep captured at one batch size deforms and
instruments another like the captured one. Checked against an independent fp64 evaluation of
MHA with head h's logits divided by λ. (The step is fed the [B·H, S, d] inputs of a run at the
other batch size directly: a static capture's graph guards its batch size. A dynamic capture
reads H too: tests/passes/test_fx_dynamic_merged_heads.py.)"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import hjplug

S, D, H = 5, 16, 2
B_CAPTURE, B_RUN = 3, 5
LAM = 0.4


class MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(D, H, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=True, average_attn_weights=False)[0]


@torch.no_grad()
def _reference(m: MHA, x: torch.Tensor, lam: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 heads, logits s/√d of head h divided by lam[h]: (π·v [B·H, S, d], H(π) [B, H, S])."""
    a, b = m.attn, x.shape[0]
    q, k, v = (x.double() @ a.in_proj_weight.double().T + a.in_proj_bias.double()).chunk(3, -1)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, S, H, D // H).transpose(1, 2)  # [B, H, S, d]

    z = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(D // H)
    z = z / torch.tensor(lam, dtype=torch.float64).view(1, H, 1, 1)
    p = torch.softmax(z, -1)
    ent = -(p * torch.log_softmax(z, -1)).sum(-1)
    return (p @ heads(v)).reshape(b * H, S, D // H), ent


def _setup() -> tuple[MHA, nn.Module, Any, torch.Tensor, tuple[Any, ...]]:
    """(model, converted at B_CAPTURE, its step, x at B_RUN, the step's inputs at B_RUN)."""
    torch.manual_seed(0)
    m = MHA().eval()
    with torch.no_grad():
        m.attn.in_proj_weight.mul_(3.0)  # peaked heads: λ visibly matters
    hj = hjplug.convert(m, (torch.randn(B_CAPTURE, S, D),))
    (step,) = hj.steps.values()
    assert step.spec.hamiltonian.params["heads_per_batch"] == H
    assert step.spec.hamiltonian.params["heads"] == B_CAPTURE * H
    x = torch.randn(B_RUN, S, D)
    other = hjplug.convert(m, (x,))
    got: dict[str, tuple[Any, ...]] = {}
    (s2,) = other.steps.values()
    handle = s2.register_forward_pre_hook(lambda _m, a: got.setdefault("args", a))
    with torch.no_grad():
        other(x)
    handle.remove()
    assert got["args"][0].shape[0] == B_RUN * H
    return m, hj, step, x, got["args"]


@pytest.mark.parametrize("api", ["instrument", "hjplug"])
def test_per_head_deform_at_another_batch_size(api: str) -> None:
    m, hj, step, x, args = _setup()
    ref, _ = _reference(m, x, [1.0, LAM])
    ctx = hjplug.instrument.deform if api == "instrument" else hjplug.deform
    with torch.no_grad(), ctx(hj, LAM, heads=1):
        assert isinstance(step.epsilon, tuple) and len(step.epsilon) == H
        got = step(*args)
    assert got.shape == ref.shape
    assert (got.double() - ref).abs().max() < 1e-5
    assert step.epsilon == step.identified_epsilon  # restored


@pytest.mark.parametrize("stats", [("entropy",), ("entropy", "weights")])
def test_per_head_statistics_at_another_batch_size(stats: tuple[str, ...]) -> None:
    m, hj, step, x, args = _setup()
    _, ent = _reference(m, x, [1.0, LAM])
    with torch.no_grad(), hjplug.instrument.deform(hj, LAM, heads=1), hjplug.instrument(
            hj, stats=stats) as rec:
        step(*args)
    got = rec["layers.0.attn.entropy"]
    assert got.shape == (B_RUN, H, S)
    assert (got.double() - ent).abs().max() < 1e-5
    eps0 = math.sqrt(D // H)
    torch.testing.assert_close(rec["layers.0.attn.epsilon"].double(),
                               torch.tensor([eps0, LAM * eps0], dtype=torch.float64))
    assert not step._observers


def test_per_slice_tuple_is_stored_per_head() -> None:
    _, _, step, _, _ = _setup()
    eps0 = math.sqrt(D // H)
    step.epsilon = (eps0, LAM * eps0) * B_CAPTURE  # ε_{b·H+h} = ε_h: stored as H values
    assert step.epsilon == (eps0, LAM * eps0)
    step.epsilon = [eps0, LAM * eps0]  # H values accepted as they are
    assert step.epsilon == (eps0, LAM * eps0)
    step.reset_epsilon()
