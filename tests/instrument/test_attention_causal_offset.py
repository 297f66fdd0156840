"""Causal SDPA with Sq ≠ Sk: PyTorch's `is_causal=True` is aligned TOP-LEFT (query i sees key
j iff j ≤ i), hj_attention's `causal=True` bottom-right. Every path of a converted
HJAttentionStep (statistics via the kernel, deformed ε, explicit scores) must give the model's
own top-left answer, and the statistics (lse, entropy, visible keys) must be those of the
top-left masked softmax."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug
import hjplug.kernels as kernels
from hjplug.modules import attention as attention_mod

H, D = 2, 32


class CrossCausal(nn.Module):
    """Queries from x (Sq = x's length), keys / values from y (Sk = y's length), causal SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(32, H * D)
        self.kv = nn.Linear(32, 2 * H * D)

    def qkv(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B = x.shape[0]
        q = self.q(x).view(B, -1, H, D).transpose(1, 2)  # [B, H, Sq, D]
        k, v = self.kv(y).view(B, -1, 2, H, D).permute(2, 0, 3, 1, 4)  # [B, H, Sk, D]
        return q, k, v

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x, y)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return o.transpose(1, 2).reshape(x.shape[0], -1, H * D)


def _setup(sq: int, sk: int):
    torch.manual_seed(0)
    m = CrossCausal().eval()
    x, y = torch.randn(2, sq, 32), torch.randn(2, sk, 32)
    hj = hjplug.convert(m, (x, y))
    steps = [s for s in hj.steps.values() if isinstance(s, attention_mod.HJAttentionStep)]
    assert len(steps) == 1 and steps[0].mode == "sdpa"
    return m, hj, steps[0], x, y


def _fp64_top_left(m: CrossCausal, x, y, eps: float) -> dict[str, torch.Tensor]:
    """out, lse, entropy, keys of softmax(q·kᵀ/ε) under the explicit top-left mask, in fp64."""
    md = copy.deepcopy(m).double()
    with torch.no_grad():
        q, k, v = md.qkv(x.double(), y.double())
    sq, sk = q.shape[-2], k.shape[-2]
    keep = torch.ones(sq, sk, dtype=torch.bool).tril()  # top-left: j ≤ i (SDPA's is_causal)
    z = (q @ k.transpose(-1, -2) / eps).masked_fill(~keep, float("-inf"))  # [B, H, Sq, Sk]
    lse = torch.logsumexp(z, -1)
    p = torch.softmax(z, -1)
    ent = lse - (p * z.masked_fill(~keep, 0.0)).sum(-1)
    out = (p @ v).transpose(1, 2).reshape(x.shape[0], sq, H * D)
    return {"out": out, "lse": lse, "entropy": ent,
            "keys": keep.sum(-1).expand(x.shape[0], H, sq)}


def _check_stats(rec, want: dict[str, torch.Tensor]) -> None:
    for s in ("entropy", "lse"):
        got = rec[f"layers.0.attn.{s}"].double().reshape(want[s].shape)
        torch.testing.assert_close(got, want[s], atol=1e-5, rtol=1e-6)
    keys = rec["layers.0.attn.keys"].reshape(want["keys"].shape)
    assert torch.equal(keys.long(), want["keys"].long()), keys


@pytest.mark.parametrize(("sq", "sk"), [(3, 7), (7, 3), (1, 5)])
def test_observed_causal_offset_matches_the_model(sq: int, sk: int) -> None:
    m, hj, _step, x, y = _setup(sq, sk)
    eps0 = D ** 0.5
    with torch.no_grad():
        ref = m(x, y)
        with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
            out = hj(x, y)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    want = _fp64_top_left(m, x, y, eps0)
    torch.testing.assert_close(out.double(), want["out"], atol=1e-5, rtol=1e-5)
    _check_stats(rec, want)


@pytest.mark.parametrize(("sq", "sk"), [(3, 7), (7, 3)])
def test_deformed_causal_offset_matches_fp64(sq: int, sk: int) -> None:
    m, hj, step, x, y = _setup(sq, sk)
    eps = 2.5  # ε₀ = √32 ≈ 5.66: logits sharpened
    want = _fp64_top_left(m, x, y, eps)
    step.epsilon = eps
    try:
        with torch.no_grad():
            plain = hj(x, y)  # deformed ε, nothing observed: SDPA at scale 1/ε
            with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
                observed = hj(x, y)  # statistics: hj_attention
            h = step.observe("scores", lambda *a: None)
            explicit = hj(x, y)  # scores observed: the explicit evaluation
            h.remove()
    finally:
        step.reset_epsilon()
    for got in (plain, observed, explicit):
        torch.testing.assert_close(got.double(), want["out"], atol=1e-5, rtol=1e-5)
    _check_stats(rec, want)


def test_square_causal_keeps_the_fast_flag(monkeypatch) -> None:
    m, hj, _step, x, y = _setup(5, 5)
    seen: list[tuple[bool, object]] = []
    real = kernels.hj_attention

    def spy(*a, **kw):
        seen.append((kw.get("causal"), kw.get("bias")))
        return real(*a, **kw)

    monkeypatch.setattr(kernels, "hj_attention", spy)
    with torch.no_grad():
        ref = m(x, y)
        with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
            out = hj(x, y)
    assert seen == [(True, None)]  # the kernel's own causal band, no [Sq, Sk] mask
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    _check_stats(rec, _fp64_top_left(m, x, y, D ** 0.5))


def test_offset_causal_passes_a_top_left_mask(monkeypatch) -> None:
    """Sq ≠ Sk: the kernel gets no causal flag (its band is bottom-right) but the top-left mask."""
    _m, hj, _step, x, y = _setup(3, 6)
    seen: list[tuple[bool, object]] = []
    real = kernels.hj_attention

    def spy(*a, **kw):
        seen.append((kw.get("causal"), kw.get("bias")))
        return real(*a, **kw)

    monkeypatch.setattr(kernels, "hj_attention", spy)
    with torch.no_grad(), hjplug.instrument(hj, stats=("lse",)):
        hj(x, y)
    assert len(seen) == 1 and seen[0][0] is False
    bias = seen[0][1]
    assert isinstance(bias, torch.Tensor) and bias.dtype == torch.bool
    assert torch.equal(bias.reshape(3, 6), torch.ones(3, 6, dtype=torch.bool).tril())


def test_replayed_chain_with_statistics_names_the_fallback(monkeypatch) -> None:
    """A replayed chain (deform_core) observed for statistics reports the fallback through
    warn_fallback (which warns on CUDA only), once per forward with statistics."""
    import transformers as tf

    tf.logging.set_verbosity_error()
    cfg = tf.AutoConfig.for_model("bloom", n_layer=1, hidden_size=32, n_head=4, vocab_size=97)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = tf.AutoModel.from_config(cfg).eval()
    inputs = {"input_ids": torch.randint(3, 97, (1, 6))}
    hj = hjplug.convert(model, inputs)
    steps = [s for s in hj.steps.values() if isinstance(s, attention_mod.HJAttentionStep)]
    assert steps and all(s.deform_core is not None for s in steps)
    calls: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(attention_mod, "warn_fallback", lambda *a: calls.append(a))
    with torch.no_grad():
        with hjplug.deform(hj, 0.5):
            hj(**inputs)  # deformed, nothing observed: no statistics, no fallback to name
        assert calls == []
        with hjplug.instrument(hj, stats=("entropy",)):
            hj(**inputs)
    assert len(calls) == len(steps), calls
    where, reason, on_cuda = calls[0]
    assert "HJAttentionStep(" in where and "replayed" in reason and on_cuda is False
