"""The attention reference twin's CPU path (row blocks, key chunks, band skipping, base-2 online
merge): edge cases against fp64 evaluations of hjplug.math."""

from __future__ import annotations

import math

import pytest
import torch
from _kernel_fp64 import attention_fp64, visible

import hjplug.kernels.reference.hj_attention as ref
from hjplug.kernels.reference import _online


def _hf_layout(t: torch.Tensor) -> torch.Tensor:
    """[B, H, S, D] with the strides of a Hugging Face [B, S, H, D] projection (not contiguous)."""
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def _assert_matches(r, e, tol: float, topk: int = 0,  # type: ignore[no-untyped-def]
                    rows=slice(None)) -> None:
    """r (an HJAttentionOutput) against e (attention_fp64) on the query rows `rows`."""
    for i, name in enumerate(("out", "lse", "entropy", "topk_weights")[:4 if topk else 3]):
        got = getattr(r, name)[:, :, rows].double()
        torch.testing.assert_close(got, e[i][:, :, rows], rtol=tol, atol=tol)
    if topk:
        assert torch.equal(r.topk_indices[:, :, rows], e[4][:, :, rows])


@pytest.mark.parametrize("block", [64, 700, None])
@pytest.mark.parametrize(("sq", "sk", "causal", "window"),
                         [(37, 37, True, None), (20, 45, True, 9), (33, 33, False, 5),
                          (50, 29, True, None), (29, 29, False, None)])
def test_row_blocks_and_band_skipping_match_fp64(monkeypatch, block, sq, sk, causal, window):
    if block is not None:  # force head groups / query blocks / skipped key chunks
        monkeypatch.setattr(ref, "BLOCK_SCORES", block)
    g = torch.Generator().manual_seed(sq * 100 + sk)
    q = _hf_layout(torch.randn(2, 6, sq, 16, generator=g, dtype=torch.float64))
    k = _hf_layout(torch.randn(2, 2, sk, 16, generator=g, dtype=torch.float64))  # GQA g = 3
    v = _hf_layout(torch.randn(2, 2, sk, 8, generator=g, dtype=torch.float64))
    bias = torch.randn(2, 1, sq, sk, generator=g, dtype=torch.float64)
    r = ref.hj_attention(q, k, v, causal=causal, window=window, bias=bias, topk=3, chunk=8)
    e = attention_fp64(q, k, v, causal=causal, window=window, bias=bias, topk=3)
    assert r.out.dtype == r.lse.dtype == r.entropy.dtype == torch.float64
    rows = visible(sq, sk, causal, window).any(-1)  # queries with a visible key (Sq > Sk: not all)
    _assert_matches(r, e, 1e-10, topk=3, rows=rows)
    assert torch.equal(r.out[:, :, ~rows], torch.zeros_like(r.out[:, :, ~rows]))
    assert torch.isneginf(r.lse[:, :, ~rows]).all() and not r.entropy[:, :, ~rows].any()
    assert (r.topk_indices[:, :, ~rows] == -1).all()


def test_no_block_holds_more_scores_than_its_budget(monkeypatch):
    seen: list[tuple[int, ...]] = []
    merge = _online.merge_chunk

    def spy(st, t, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(tuple(t.shape))
        return merge(st, t, *args, **kwargs)

    monkeypatch.setattr(_online, "merge_chunk", spy)
    monkeypatch.setattr(ref, "BLOCK_SCORES", 4096)
    q, k, v = (torch.randn(2, 4, 300, 16) for _ in range(3))
    ref.hj_attention(q, k, v, chunk=64)
    assert seen and max(math.prod(s) for s in seen) <= 4096  # never Sq × Sk scores at once
    assert max(s[-1] for s in seen) == 64
    full = sum(math.prod(s) for s in seen)
    assert full == 2 * 4 * 300 * 300  # every score exactly once
    seen.clear()
    ref.hj_attention(q, k, v, chunk=64, causal=True)
    assert sum(math.prod(s) for s in seen) < 0.75 * full  # chunks above the diagonal skipped


def test_key_range_covers_exactly_the_visible_band():
    for sq, sk, causal, window in [(40, 40, True, -1), (10, 50, True, 7), (33, 33, False, 5),
                                   (50, 20, True, -1), (8, 8, False, -1), (30, 60, False, 4)]:
        vis = visible(sq, sk, causal, window if window > 0 else None)
        for i0 in range(0, sq, 7):
            i1 = min(sq, i0 + 7)
            lo, hi = ref.key_range(i0, i1, sq, sk, causal, window)
            seen = vis[i0:i1].any(0)  # keys some query of the block sees
            assert not seen[:lo].any() and not seen[hi:].any()
            if hi > lo:
                assert seen[lo] and seen[hi - 1]
            m = ref.visible_mask(sq, 0, sk, sk, causal, window, torch.device("cpu"), i0, i1)
            assert m is None or torch.equal(m, vis[i0:i1])


@pytest.mark.parametrize("mask_shape", ["per_query", "key_padding"])
def test_underflow_heavy_masks_fp32(mask_shape):
    """Large scores (most weights underflow) and mostly-removed keys: no NaN, removed keys get
    weight 0 and index −1, rows without a visible key give out 0, lse −inf, H 0."""
    g = torch.Generator().manual_seed(3)
    q = _hf_layout(torch.randn(4, 3, 64, 32, generator=g) * 6)  # |s| up to ~ 10³
    k = _hf_layout(torch.randn(4, 3, 64, 32, generator=g) * 6)
    v = _hf_layout(torch.randn(4, 3, 64, 32, generator=g))
    keep = torch.ones(4, 1, 1, 64, dtype=torch.bool)
    keep[0, ..., 5:] = False  # 59 of 64 keys removed
    keep[1, ..., ::3] = False
    keep[3] = False  # no visible key at all
    if mask_shape == "per_query":
        keep = keep.expand(4, 1, 64, 64).clone()
    r = ref.hj_attention(q, k, v, bias=keep, topk=4)
    e = attention_fp64(q, k, v, bias=keep, topk=4)
    assert torch.equal(r.out[3], torch.zeros(3, 64, 32))
    assert torch.isneginf(r.lse[3]).all() and torch.equal(r.entropy[3], torch.zeros(3, 64))
    assert (r.topk_indices[3] == -1).all() and (r.topk_weights[3] == 0).all()
    live = slice(0, 3)
    torch.testing.assert_close(r.out[live].double(), e[0][live], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(r.lse[live].double(), e[1][live], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(r.entropy[live].double(), e[2][live], rtol=1e-4, atol=1e-4)
    idx = r.topk_indices[live]  # [3, 3, 64, 4]
    kept = keep[live].expand(3, 3, 64, 64).gather(-1, idx.clamp_min(0))
    assert kept[idx >= 0].all()  # a removed key is never an atom
    assert (r.topk_weights[live][idx == -1] == 0).all()
    assert (idx[0] >= 0).sum(-1).eq(4).all()  # batch 0 keeps 5 keys: 4 atoms in every row


def test_finite_bias_below_minus_1e4_is_a_visible_key():
    """Only −inf removes a key; a finite bias of −2·10⁴ … −10⁶ shifts scores, and a row whose keys
    all sit that low still has a finite lse (not the empty-row −inf)."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, 24, 16, generator=g, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(1, 2, 24, 24, generator=g, dtype=torch.float64)
    bias[..., 3, :] = -2.0e4 + bias[..., 3, :]  # every key of row 3 far below −10⁴
    bias[..., 7, :12] = -1.0e6  # half the keys of row 7 at −10⁶: weight 0, not NaN
    bias[..., 9, 5] = -3.0e4
    r = ref.hj_attention(q, k, v, bias=bias, chunk=5)
    e = attention_fp64(q, k, v, bias=bias)
    _assert_matches(r, e, 1e-9)
    assert torch.isfinite(r.lse).all() and (r.lse[..., 3] < -1.9e4).all()
    r32 = ref.hj_attention(q.float(), k.float(), v.float(), bias=bias.float(), chunk=5)
    rows = torch.arange(24) != 3  # row 3: fp32 spacing at 2·10⁴ is 2·10⁻³, checked loosely
    torch.testing.assert_close(r32.entropy[..., rows].double(), e[2][..., rows], rtol=1e-4,
                               atol=1e-4)
    torch.testing.assert_close(r32.out[..., rows, :].double(), e[0][..., rows, :], rtol=1e-4,
                               atol=1e-4)
    torch.testing.assert_close(r32.entropy[..., 3].double(), e[2][..., 3], rtol=0, atol=3e-2)


def test_nan_inputs_give_nan_rows_not_averages():
    q, k, v = (torch.randn(1, 2, 12, 8) for _ in range(3))
    q[0, 1, 4] = float("nan")  # one query row
    k[0, 0, 6] = float("nan")  # one key: every causal row that sees it
    r = ref.hj_attention(q, k, v, causal=True, chunk=4)
    bad = torch.zeros(1, 2, 12, dtype=torch.bool)
    bad[0, 1, 4] = True
    bad[0, 0, 6:] = True
    for t in (r.lse, r.entropy, r.out.sum(-1)):
        assert torch.isnan(t[bad]).all() and not torch.isnan(t[~bad]).any()
    clean = ref.hj_attention(q.nan_to_num(), k.nan_to_num(), v, causal=True, chunk=4)
    torch.testing.assert_close(r.lse[~bad], clean.lse[~bad])


def test_dtypes_fp64_stays_and_half_computes_in_fp32():
    q, k, v = (torch.randn(1, 2, 9, 8, dtype=torch.float64) for _ in range(3))
    r = ref.hj_attention(q, k, v, topk=2)
    assert {r.out.dtype, r.lse.dtype, r.entropy.dtype, r.topk_weights.dtype} == {torch.float64}
    h = ref.hj_attention(q.half(), k.half(), v.half(), topk=2)
    assert h.out.dtype == torch.float16 and h.lse.dtype == torch.float32
    torch.testing.assert_close(h.lse.double(), r.lse, rtol=1e-2, atol=1e-2)


def test_no_keys_at_all():
    q = torch.randn(1, 2, 3, 8)
    k, v = torch.randn(1, 1, 0, 8), torch.randn(1, 1, 0, 5)
    r = ref.hj_attention(q, k, v, topk=2)
    assert torch.equal(r.out, torch.zeros(1, 2, 3, 5)) and torch.isneginf(r.lse).all()
    assert torch.equal(r.entropy, torch.zeros(1, 2, 3)) and (r.topk_indices == -1).all()


def test_gradients_with_row_blocks_and_key_chunks(monkeypatch):
    monkeypatch.setattr(ref, "BLOCK_SCORES", 12)  # query blocks of 2 rows (g = 2, chunk 3)
    g = torch.Generator().manual_seed(7)
    q = torch.randn(1, 2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 1, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 1, 7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(q, k, v, b):  # type: ignore[no-untyped-def]
        r = ref.hj_attention(q, k, v, bias=b, causal=True, window=4, topk=2, chunk=3)
        return r.out, r.lse, r.entropy, r.topk_weights

    assert torch.autograd.gradcheck(fn, (q, k, v, b))
