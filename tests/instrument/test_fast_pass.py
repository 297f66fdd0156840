"""The CPU statistics-only pass (hjplug.instrument._fast) against the integration's eager path in
fp64, on hand-built attention calls: key padding, general and float masks, causal, grouped-query
heads, per-head λ, empty rows, NaN rows, top-k; and its block partition."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hjplug.instrument import _fast
from hjplug.instrument._tap import AttentionCall
from hjplug.integrations.huggingface.attention_math import eager_attention

B, H, SQ, SK, D = 3, 4, 9, 11, 8


def _call(mask: torch.Tensor | None = None, hk: int = H, causal: bool = False,
          lam: tuple[float, ...] | None = None, dtype: torch.dtype = torch.float32,
          pb: torch.Tensor | None = None, sq: int = SQ, sk: int = SK) -> AttentionCall:
    g = torch.Generator().manual_seed(0)
    mod = nn.Module()
    mod.is_causal = causal  # type: ignore[assignment]
    if lam is not None:
        object.__setattr__(mod, "_hjplug", SimpleNamespace(scale=lam))
    # HF layout: [B, S, H, D] projections viewed as [B, H, S, D] (non-contiguous)
    q = (3 * torch.randn(B, sq, H, D, generator=g)).to(dtype).transpose(1, 2)
    k = (3 * torch.randn(B, sk, hk, D, generator=g)).to(dtype).transpose(1, 2)
    v = torch.randn(B, sk, hk, D, generator=g).to(dtype).transpose(1, 2)
    return AttentionCall(mod, q, k, v, mask, None, causal, pb, None)


def _reference(call: AttentionCall, topk: int) -> dict[str, torch.Tensor]:
    k, v, bias, causal = call.prepared()
    lam = call.lam()
    _, lse, ent, keys, p, _ = eager_attention(call.query.double(), k.double(), v.double(),
                                              None if bias is None else (
                                                  bias if bias.dtype == torch.bool
                                                  else bias.double()),
                                              call.scale, causal, lam, None, 0.0)
    out = {"lse": lse, "entropy": ent, "keys": keys}
    if topk:
        out["topk_weights"] = p.topk(min(topk, p.shape[-1]), -1).values
    return out


def _check(call: AttentionCall, topk: int = 0, atol: float = 1e-5) -> dict[str, torch.Tensor]:
    got = _fast.attention_stats(call, topk)
    assert got is not None
    ref = _reference(call, topk)
    assert torch.equal(got["keys"], ref["keys"])
    torch.testing.assert_close(got["lse"].double(), ref["lse"], atol=atol, rtol=1e-6,
                               equal_nan=True)
    torch.testing.assert_close(got["entropy"].double(), ref["entropy"], atol=atol, rtol=0,
                               equal_nan=True)
    if topk:
        kk = ref["topk_weights"].shape[-1]
        torch.testing.assert_close(got["topk_weights"][..., :kk].double(), ref["topk_weights"],
                                   atol=atol, rtol=0)
        idx = got["topk_indices"]
        assert torch.equal(idx < 0, got["topk_weights"] == 0)  # −1 exactly where π = 0
    return got


def _padding() -> torch.Tensor:
    m = torch.ones(B, 1, SQ, SK, dtype=torch.bool)  # [B, 1, Sq, Sk], True = keep
    m[0, ..., SK - 3:] = False
    m[1, ..., SK - 1:] = False
    return m


@pytest.mark.parametrize("chunk", [1 << 17, 2 * SK, 1])
@pytest.mark.parametrize("hk", [H, 2])
def test_key_padding_and_no_mask(chunk: int, hk: int, monkeypatch) -> None:
    monkeypatch.setattr(_fast, "CHUNK", chunk)
    _check(_call(_padding(), hk=hk), topk=3)
    _check(_call(None, hk=hk), topk=SK + 2)  # k > Sk: weight 0, index −1 past the keys


@pytest.mark.parametrize("chunk", [1 << 17, 3 * SK, 1])
def test_general_masks_causal_float_bias_and_empty_rows(chunk: int, monkeypatch) -> None:
    monkeypatch.setattr(_fast, "CHUNK", chunk)
    g = torch.Generator().manual_seed(1)
    m = torch.rand(B, 1, SQ, SK, generator=g) > 0.4
    m[2, :, 4] = False  # a query with no visible key: lse = −inf, H = 0
    got = _check(_call(m, hk=2), topk=2)
    assert torch.isneginf(got["lse"][2, :, 4]).all() and (got["entropy"][2, :, 4] == 0).all()
    assert (got["topk_indices"][2, :, 4] == -1).all()
    _check(_call(None, causal=True, sq=SK), topk=2)
    fb = torch.randn(B, H, SQ, SK, generator=g)  # T5-style position bias with a float mask
    fm = torch.where(_padding(), 0.0, torch.finfo(torch.float32).min)
    _check(_call(fm, pb=fb), topk=2)


def test_float_bias_far_below_the_padding_sentinel() -> None:
    """Visible keys whose finite bias is below −10⁹ still beat removed keys (−∞), fp64."""
    pb = torch.zeros(B, H, SQ, SK, dtype=torch.float64)
    pb[0, :, 2] = -3.0e9  # every key of query 2 in batch 0: finite, far below −10⁹
    got = _check(_call(_padding(), pb=pb, dtype=torch.float64), topk=2, atol=1e-8)
    assert torch.isfinite(got["entropy"]).all() and (got["keys"][0, :, 2] == SK - 3).all()


def test_per_head_deformation_and_fp64() -> None:
    _check(_call(_padding(), lam=(0.5, 1.0, 2.0, 0.25)), topk=2)
    _check(_call(_padding(), dtype=torch.float64), topk=2, atol=1e-10)
    assert _fast.attention_stats(_call(None, lam=(0.0, 1.0, 1.0, 1.0))) is None  # tropical


def test_peaked_rows_and_padding_do_not_lose_precision() -> None:
    """Scores spanning hundreds of nats (removed keys, near one-hot rows) stay exact."""
    call = _call(_padding())
    sharp = AttentionCall(call.module, call.query * 40, call.key, call.value, call.mask, None,
                          False, None, None)
    got = _check(sharp, topk=2, atol=1e-4)
    assert float(got["entropy"].min()) >= 0.0


def test_nan_scores_give_nan_rows_only() -> None:
    call = _call(_padding())
    q = call.query.clone()
    q[1, 2, 5, 0] = float("nan")
    got = _fast.attention_stats(AttentionCall(call.module, q, call.key, call.value, call.mask,
                                              None, False, None, None))
    assert got is not None
    bad = torch.isnan(got["lse"]) | torch.isnan(got["entropy"])
    assert bad[1, 2, 5] and int(bad.sum()) == 1


@pytest.mark.parametrize(("hk", "g", "sq", "sk", "chunk"),
                         [(4, 1, 9, 11, 1 << 17), (4, 1, 9, 11, 200), (2, 3, 9, 11, 100),
                          (2, 2, 5, 7, 1), (3, 1, 1, 4, 12)])
def test_blocks_cover_every_score_once(hk: int, g: int, sq: int, sk: int, chunk: int) -> None:
    b = 3
    seen = torch.zeros(b, hk, sq, dtype=torch.long)
    parts = _fast.blocks(b, hk, g, sq, sk, chunk)
    for bs, hs, iq in parts:
        seen[bs, hs, iq] += 1
        n = len(range(*bs.indices(b))) * len(range(*hs.indices(hk))) * len(range(*iq.indices(sq)))
        assert n * g * sk <= max(chunk, g * sk)  # ≤ chunk, or one query of the g heads
    assert (seen == 1).all()


@pytest.mark.parametrize(("n", "most"), [(12, 8), (10, 3), (7, 7), (5, 100), (9, 1), (1, 0)])
def test_split_is_near_equal(n: int, most: int) -> None:
    parts = _fast._split(n, most)
    sizes = [s.stop - s.start for s in parts]
    assert sum(sizes) == n and parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert max(sizes) <= max(1, most) and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("chunk", [1 << 17, 2 * SK, 1])
def test_causal_band_is_built_per_block(chunk: int, monkeypatch) -> None:
    """Causal calls without a mask never build the [Sq, Sk] visibility mask (memory O(block)),
    GQA and query blocks included; k_i = i + 1."""
    monkeypatch.setattr(_fast, "CHUNK", chunk)

    def no_mask(call):
        raise AssertionError("a full [Sq, Sk] visibility mask was built")

    import hjplug.instrument._hf as hf_mod

    monkeypatch.setattr(hf_mod, "visible_keys", no_mask)
    got = _check(_call(None, hk=2, causal=True, sq=SK), topk=3)
    assert got["keys"][0, 0].tolist() == list(range(1, SK + 1))
