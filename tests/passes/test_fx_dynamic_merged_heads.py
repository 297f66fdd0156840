"""convert(..., dynamic=True) of attention on a 3-D [B·H, S, d] layout (hand-written bmm attention
as BLOOM / OPT-style code writes it, nn.MultiheadAttention with need_weights): B·H is a SymInt
there, and the rule still reads H (`heads_per_batch`) from the reshape that merged batch and
heads. Run at another batch size and length than the example, the converted model then records
its statistics as [B, H, Sq], takes one ε per head (hjplug.deform(..., heads=…) or a tuple ε),
and matches an independent fp64 evaluation with head h's logits divided by λ_h. Where H cannot be
read, the record says so and a per-head ε is refused when set (not at the next call)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hjplug
from hjplug.errors import HJPlugError

E, H = 16, 2
D = E // H
B_CAPTURE, S_CAPTURE = 2, 5
B_RUN, S_RUN = 3, 7
LAM = 0.4


class BmmAttention(nn.Module):
    """[B, S, E] → q, k, v as [B·H, S, d] → softmax(q kᵀ/√d) v by bmm → [B, S, E]."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(E, 3 * E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, -1)  # [B, S, E] each

        def merged(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, H, D).transpose(1, 2).reshape(b * H, s, D)  # [B·H, S, d]

        q, k, v = merged(q), merged(k), merged(v)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(D), -1)  # [B·H, S, S]
        return torch.bmm(w, v).view(b, H, s, D).transpose(1, 2).reshape(b, s, E)  # [B, S, E]


@torch.no_grad()
def _reference(m: BmmAttention, x: torch.Tensor, lam: list[float]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64, logits of head h divided by lam[h]: (output [B, S, E], entropy H(π) [B, H, S])."""
    b, s, _ = x.shape
    q, k, v = (x.double() @ m.qkv.weight.double().T + m.qkv.bias.double()).chunk(3, -1)
    q, k, v = (t.view(b, s, H, D).transpose(1, 2) for t in (q, k, v))  # [B, H, S, d]
    z = q @ k.transpose(-1, -2) / math.sqrt(D)  # [B, H, S, S]
    z = z / torch.tensor(lam, dtype=torch.float64).view(1, H, 1, 1)
    p = torch.softmax(z, -1)
    ent = -(p * torch.log_softmax(z, -1)).sum(-1)  # [B, H, S]
    return (p @ v).transpose(1, 2).reshape(b, s, E), ent


def _converted() -> tuple[BmmAttention, nn.Module]:
    torch.manual_seed(0)
    m = BmmAttention().eval()
    with torch.no_grad():
        m.qkv.weight.mul_(3.0)  # peaked heads: λ visibly matters
    return m, hjplug.convert(m, (torch.randn(B_CAPTURE, S_CAPTURE, E),), dynamic=True)


def _step(hj: nn.Module):  # type: ignore[no-untyped-def]
    (step,) = [s for s in hj.steps.values() if s.spec.kind == "attention"]
    return step


def test_dynamic_capture_reads_heads_per_batch() -> None:
    _, hj = _converted()
    params = _step(hj).spec.hamiltonian.params
    assert params["heads_per_batch"] == H
    assert not isinstance(params["heads"], int)  # B·H of a dynamic batch: a size expression
    notes = _step(hj).spec.notes
    assert f"statistics recorded as [B, H, Sq] with H = {H}" in notes
    assert "the batch size is dynamic" in notes


def test_statistics_at_another_batch_size_and_length() -> None:
    m, hj = _converted()
    x = torch.randn(B_RUN, S_RUN, E)
    ref, ent = _reference(m, x, [1.0] * H)
    with torch.no_grad(), hjplug.instrument(hj, stats=("entropy",)) as rec:
        out = hj(x)
    assert (out.double() - ref).abs().max() < 1e-5
    assert rec["layers.0.attn.entropy"].shape == (B_RUN, H, S_RUN)
    assert rec["layers.0.attn.epsilon"].shape == (H,)
    assert (rec["layers.0.attn.entropy"].double() - ent).abs().max() < 1e-5


@pytest.mark.parametrize("how", ["deform", "tuple"])
def test_per_head_epsilon_at_another_batch_size_and_length(how: str) -> None:
    m, hj = _converted()
    step = _step(hj)
    eps0 = float(step.identified_epsilon)
    x = torch.randn(B_RUN, S_RUN, E)
    ref, ent = _reference(m, x, [1.0, LAM])
    with torch.no_grad():
        if how == "deform":
            with hjplug.deform(hj, LAM, heads=1), hjplug.instrument(hj, stats=("entropy",)) \
                    as rec:
                assert step.epsilon == (eps0, LAM * eps0)
                out = hj(x)
        else:
            step.epsilon = (eps0, LAM * eps0)
            with hjplug.instrument(hj, stats=("entropy",)) as rec:
                out = hj(x)
            step.reset_epsilon()
    assert (out.double() - ref).abs().max() < 1e-5
    assert rec["layers.0.attn.entropy"].shape == (B_RUN, H, S_RUN)
    assert (rec["layers.0.attn.entropy"].double() - ent).abs().max() < 1e-5
    torch.testing.assert_close(rec["layers.0.attn.epsilon"].double(),
                               torch.tensor([eps0, LAM * eps0], dtype=torch.float64))
    assert step.epsilon == step.identified_epsilon


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_dynamic(batch_first: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first).eval()

    class Weights(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = mha

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.attn(x, x, x, need_weights=True, average_attn_weights=False)

    model = Weights().eval()

    def shaped(b: int, s: int) -> torch.Tensor:
        return torch.randn((b, s, E) if batch_first else (s, b, E))

    hj = hjplug.convert(model, (shaped(B_CAPTURE, S_CAPTURE),), dynamic=True)
    assert _step(hj).spec.hamiltonian.params["heads_per_batch"] == H
    x = shaped(B_RUN, S_RUN)
    with torch.no_grad(), hjplug.instrument(hj, stats=("entropy",)) as rec:
        out, w = hj(x)  # π [B, H, S, S]
        ref_out, ref_w = model(x)
    assert (out - ref_out).abs().max() < 1e-6 and torch.equal(w, ref_w)
    ent = -(w.double() * w.double().clamp_min(1e-300).log()).sum(-1)  # [B, H, S]
    assert rec["layers.0.attn.entropy"].shape == (B_RUN, H, S_RUN)
    torch.testing.assert_close(rec["layers.0.attn.entropy"].double(), ent, atol=1e-5, rtol=0)


class Unsplit(nn.Module):
    """q, k, v given as [B·H, S, d] inputs: nothing in the graph tells H."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(D), -1)  # [B·H, S, S]
        return torch.bmm(w, v)  # [B·H, S, d]


def test_unreadable_heads_are_noted_and_per_head_epsilon_refused() -> None:
    torch.manual_seed(0)
    qkv = tuple(torch.randn(B_CAPTURE * H, S_CAPTURE, D) for _ in range(3))
    hj = hjplug.convert(Unsplit(), qkv, dynamic=True)
    step = _step(hj)
    assert "heads_per_batch" not in step.spec.hamiltonian.params
    assert "H not readable" in step.spec.notes
    with pytest.raises(HJPlugError, match="head count is not known"):
        step.epsilon = (1.0, 2.0)
    with pytest.raises(HJPlugError, match="head count is not known"):
        hjplug.deform(hj, LAM, heads=0)
    assert step.epsilon == step.identified_epsilon
