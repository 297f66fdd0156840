"""Per-head ε on a 3-D [B·H, S, d] attention layout (nn.MultiheadAttention with need_weights:
batch and heads merged) applies to head h of *every* batch element, not to B·H slice h.

Checked against an independent fp64 evaluation of MHA with head h's logits divided by λ
(deform and instrument), and the sweep's per-head curves against the same evaluation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hjplug

S, B, D, H = 5, 3, 16, 2
LAM = 0.4


class MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(D, H, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=True, average_attn_weights=False)[0]


def _model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    m = MHA().eval()
    with torch.no_grad():
        m.attn.in_proj_weight.mul_(3.0)  # peaked heads: λ visibly matters
    return m, torch.randn(B, S, D)


@torch.no_grad()
def _reference(m: nn.Module, x: torch.Tensor, lam: list[float]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 MHA with the logits of head h divided by lam[h]: (output [B, S, D], H(π) [B, H, S])."""
    a = m.attn
    w, b = a.in_proj_weight.double(), a.in_proj_bias.double()
    q, k, v = (x.double() @ w.T + b).chunk(3, -1)  # [B, S, D] each

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, S, H, D // H).transpose(1, 2)  # [B, H, S, d]

    s = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(D // H)  # [B, H, S, S]
    z = s / torch.tensor(lam, dtype=torch.float64).view(1, H, 1, 1)
    p = torch.softmax(z, -1)
    ent = -(p * torch.log_softmax(z, -1)).sum(-1)  # [B, H, S]
    o = (p @ heads(v)).transpose(1, 2).reshape(B, S, D)
    return o @ a.out_proj.weight.double().T + a.out_proj.bias.double(), ent


def _converted() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    m, x = _model()
    hj = hjplug.convert(m, (x,))
    (step,) = hj.steps.values()
    assert step.spec.hamiltonian.params["heads_per_batch"] == H
    return m, hj, x


@pytest.mark.parametrize("api", ["instrument", "hjplug"])
def test_per_head_deform_hits_every_batch_element(api: str) -> None:
    m, hj, x = _converted()
    ref, _ = _reference(m, x, [1.0, LAM])
    ctx = hjplug.instrument.deform if api == "instrument" else hjplug.deform
    with torch.no_grad(), ctx(hj, LAM, heads=1):
        got = hj(x)
    assert (got.double() - ref).abs().max() < 1e-5
    with torch.no_grad():  # restored exactly
        torch.testing.assert_close(hj(x), m(x), atol=0, rtol=0)


def test_per_head_deform_refuses_slice_index() -> None:
    _, hj, _ = _converted()
    with pytest.raises(hjplug.HJPlugError, match=r"head indices in \[0, 2\)"):
        hjplug.instrument.deform(hj, LAM, heads=H).__enter__()  # slice 2 = batch 1, head 0


def test_per_head_deform_statistics() -> None:
    m, hj, x = _converted()
    _, ent = _reference(m, x, [1.0, LAM])
    with torch.no_grad(), hjplug.instrument.deform(hj, LAM, heads=1), hjplug.instrument(
            hj, stats=("entropy",)) as rec:
        hj(x)
    got = rec["layers.0.attn.entropy"]
    assert got.shape == (B, H, S)
    assert (got.double() - ent).abs().max() < 1e-5
    eps0 = math.sqrt(D // H)
    torch.testing.assert_close(rec["layers.0.attn.epsilon"].double(),
                               torch.tensor([eps0, LAM * eps0], dtype=torch.float64))


def test_per_head_sweep_means_per_head() -> None:
    m, hj, x = _converted()
    scales = [0.5, 2.0]
    sw = hjplug.sweep(hj, (x,), scales, heads=1, folds=False)
    assert sw.entropy.shape[-1] == H and sw.ok
    for s, lam in enumerate(scales):
        _, ent = _reference(m, x, [1.0, lam])
        want = ent.mean(dim=(0, 2))  # [H]: mean over batch and queries
        assert abs(float(sw.entropy[s, 0, 1]) - float(want[1])) < 1e-5
        assert abs(float(sw.entropy[s, 0, 0]) - float(want[0])) < 1e-5
        assert sw.fixed_entropy is not None
        assert abs(float(sw.fixed_entropy[s, 0, 1]) - float(want[1])) < 1e-5
