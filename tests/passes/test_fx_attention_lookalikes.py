"""Attention variants and look-alikes not in the zoo: the attention rule's reading is honest
(ε = 1/scale of the softmax input, pre-scaled q folded in), softmax-like blocks that are not
an LSE / Gibbs average over keys are never read as attention and leave a near-miss with the
reason, and converted / instrumented / deformed outputs follow the model."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug

D, H, S, B = 16, 2, 6, 2
DH = D // H


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(B, S, D, generator=torch.Generator().manual_seed(seed))


def _heads(t: torch.Tensor) -> torch.Tensor:
    return t.view(t.shape[0], t.shape[1], H, DH).transpose(1, 2)  # [B, H, S, DH]


class _QKV(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(_heads(t) for t in self.qkv(x).split(D, -1))


class NegScale(_QKV):  # softmax(−s·q kᵀ): a Gibbs average of −scores, not attention's LSE
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        return torch.softmax(q @ k.transpose(-1, -2) * (-0.25), -1) @ v


class PreScaledQ(_QKV):  # timm / nn.MultiheadAttention(need_weights=True): q·s before q kᵀ
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        q = q * DH ** -0.5
        return torch.softmax(q @ k.transpose(-1, -2), -1) @ v


class QueryAxis(_QKV):  # softmax over the query axis, then · v
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        z = q @ k.transpose(-1, -2) / math.sqrt(DH)
        return F.softmax(z, dim=2) @ v


class EinsumAttention(_QKV):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        z = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(DH)
        return torch.einsum("bhqk,bhkd->bhqd", z.softmax(-1), v)


class SigmoidAttention(_QKV):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        return torch.sigmoid(q @ k.transpose(-1, -2) / math.sqrt(DH) - math.log(S)) @ v


class LinearAttention(_QKV):  # φ(q) φ(k)ᵀ, normalised by its row sum
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        a = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-1, -2)
        return a / a.sum(-1, keepdim=True) @ v


class MaskedFill1e9(_QKV):  # −1e9 is a finite atom (the removed rule is ≤ −1e30): said so
    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        z = q @ k.transpose(-1, -2) / math.sqrt(DH)
        z = z.masked_fill(~keep[:, None, None, :], -1e9)
        return torch.softmax(z, -1) @ v


def _inspect(model: nn.Module, inputs: tuple) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return hjplug.inspect(model, inputs)


def _attention(report: object) -> list:
    return [b for b in report.blocks if b.kind == "attention"]  # type: ignore[attr-defined]


def _attention_misses(report: object) -> list:
    return [m for m in report.near_misses if m.rule == "attention"]  # type: ignore[attr-defined]


def test_negative_scale_is_not_attention() -> None:
    torch.manual_seed(0)
    model, x = NegScale().eval(), _x()
    report = _inspect(model, (x,))
    assert not _attention(report), [b.epsilon for b in _attention(report)]
    (miss,) = _attention_misses(report)
    assert "negative" in miss.reason
    hj = hjplug.convert(model, (x,))
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(hj(x), ref)
        with hjplug.instrument(hj, stats=("entropy", "lse")):
            torch.testing.assert_close(hj(x), ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cls", [QueryAxis, EinsumAttention, SigmoidAttention, LinearAttention],
                         ids=lambda c: c.__name__)
def test_lookalikes_leave_an_attention_near_miss(cls: type) -> None:
    torch.manual_seed(0)
    model, x = cls().eval(), _x()
    report = _inspect(model, (x,))
    assert not _attention(report)
    misses = _attention_misses(report)
    assert misses, report.near_misses  # type: ignore[attr-defined]
    assert all(m.reason for m in misses)
    with torch.no_grad():
        assert torch.equal(hjplug.convert(model, (x,))(x), model(x))


def test_prescaled_query_epsilon_is_sqrt_d_head() -> None:
    torch.manual_seed(0)
    model, x = PreScaledQ().eval(), _x()
    (block,) = _attention(_inspect(model, (x,)))
    assert block.epsilon == pytest.approx(math.sqrt(DH))
    assert "no explicit scale" not in block.notes
    hj = hjplug.convert(model, (x,))
    q, k, v = (t.double() for t in model.split(x))
    z0 = q @ k.transpose(-1, -2) * DH ** -0.5
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(hj(x), ref)
        with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
            torch.testing.assert_close(hj(x), ref, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(rec["layers.0.attn.lse"].double(), torch.logsumexp(z0, -1),
                                   atol=1e-5, rtol=1e-5)
        p = torch.softmax(z0, -1)
        ent = -(p * torch.log_softmax(z0, -1)).sum(-1)
        torch.testing.assert_close(rec["layers.0.attn.entropy"].double(), ent, atol=1e-5,
                                   rtol=1e-5)
        for lam in (0.5, 3.0):
            with hjplug.deform(hj, lam):
                out = hj(x)
            torch.testing.assert_close(out.double(), torch.softmax(z0 / lam, -1) @ v,
                                       atol=1e-5, rtol=1e-5)


def test_multihead_attention_with_weights_reads_like_sdpa() -> None:
    """nn.MultiheadAttention: need_weights=True (baddbmm on a pre-scaled q) and False (SDPA)
    give the same ε = √d_head."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(D, H).eval()
    x = _x().transpose(0, 1).contiguous()  # batch_first=False: [S, B, D]
    kpm = torch.zeros(B, S, dtype=torch.bool)
    kpm[1, -2:] = True

    class Wrap(nn.Module):
        def __init__(self, need: bool) -> None:
            super().__init__()
            self.mha, self.need = mha, need

        def forward(self, x: torch.Tensor, kpm: torch.Tensor):
            return self.mha(x, x, x, key_padding_mask=kpm, need_weights=self.need)

    eps = []
    for need in (True, False):
        model = Wrap(need).eval()
        (block,) = _attention(_inspect(model, (x, kpm)))
        eps.append(block.epsilon)
        hj = hjplug.convert(model, (x, kpm))
        with torch.no_grad():
            for a, b in zip(model(x, kpm), hj(x, kpm), strict=True):
                if a is not None:
                    assert torch.equal(a, b)
    assert eps == pytest.approx([math.sqrt(DH)] * 2)


def test_finite_masked_fill_is_noted() -> None:
    torch.manual_seed(0)
    model, x = MaskedFill1e9().eval(), _x()
    keep = torch.ones(B, S, dtype=torch.bool)
    keep[1, -2:] = False
    (block,) = _attention(_inspect(model, (x, keep)))
    assert "-1e+09" in block.notes and "finite" in block.notes


class LearnedTemperature(_QKV):  # ε = t is a runtime value: no constant ε to read
    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor(0.7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(x)
        return torch.softmax((q @ k.transpose(-1, -2)) / self.t, -1) @ v


def test_learned_temperature_is_a_near_miss_not_unscaled_logits() -> None:
    torch.manual_seed(0)
    model, x = LearnedTemperature().eval(), _x()
    report = _inspect(model, (x,))
    assert not _attention(report)
    (miss,) = _attention_misses(report)
    assert "temperature" in miss.reason and "t" in miss.reason
    for b in report.blocks:  # type: ignore[attr-defined]
        assert "unscaled" not in b.notes, b  # the softmax reading must not claim ε = 1 plainly


class MatmulMLP(nn.Module):  # x @ W.T → gelu → @ W.T (Falcon-style linear layers): no q·kᵀ
    def __init__(self) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Parameter(torch.randn(32, D)), nn.Parameter(torch.randn(D, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x @ self.w1.T) @ self.w2.T


def test_weight_matmuls_are_no_attention_candidates() -> None:
    report = _inspect(MatmulMLP().eval(), (_x(),))
    assert not _attention_misses(report), report.near_misses  # type: ignore[attr-defined]


class MultiQuery(nn.Module):  # one k / v head broadcast over the query heads by expand
    def __init__(self) -> None:
        super().__init__()
        self.q, self.kv = nn.Linear(D, D), nn.Linear(D, 2 * DH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = _heads(self.q(x))
        k, v = self.kv(x).unsqueeze(1).split(DH, -1)  # [B, 1, S, DH]
        k, v = k.expand(B, H, S, DH), v.expand(B, H, S, DH)
        return torch.softmax(q @ k.transpose(-1, -2) * DH ** -0.5, -1) @ v


def test_multi_query_is_noted() -> None:
    torch.manual_seed(0)
    model, x = MultiQuery().eval(), _x()
    (block,) = _attention(_inspect(model, (x,)))
    assert "multi-query" in block.notes and block.epsilon == pytest.approx(math.sqrt(DH))
    with torch.no_grad():
        assert torch.equal(hjplug.convert(model, (x,))(x), model(x))
