"""The shared masking / eager-attention helpers of the HF integration (attention_math)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hjplug.integrations.huggingface.attention_math import (
    combine_bias,
    eager_attention,
    topk_weights,
    visible_counts,
    visible_mask,
)


def test_combine_bias_rules() -> None:
    assert combine_bias(None, None, torch.float32) is None
    fmin = torch.finfo(torch.float32).min
    m = torch.tensor([[[[0.0, fmin, -1.0]]]])  # [1, 1, 1, 3]
    b = combine_bias(m, None, torch.float32)
    assert b is not None and torch.isneginf(b[..., 1]).all() and b[..., 2].item() == -1.0
    keep = torch.tensor([[[[True, False, True]]]])
    pb = torch.tensor([[[[0.5, 0.25, 2.0]]]])
    b = combine_bias(keep, pb, torch.float64)
    assert b is not None and b.dtype == torch.float64
    assert b.tolist() == [[[[0.5, float("-inf"), 2.0]]]]
    b = combine_bias(m, pb, torch.float32)
    assert b is not None and b[..., 0].item() == 0.5 and torch.isneginf(b[..., 1]).all()


def test_visible_mask_and_counts() -> None:
    keep = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    keep[1, ..., 3] = False
    assert visible_counts(None, False, (2, 3, 4, 4), torch.device("cpu")).eq(4).all()
    counts = visible_counts(keep, True, (2, 3, 4, 4), torch.device("cpu"))  # [B, H, Sq]
    assert counts.shape == (2, 3, 4) and counts.dtype == torch.long
    assert counts[0, 0].tolist() == [1, 2, 3, 4] and counts[1, 2].tolist() == [1, 2, 3, 3]
    vis = visible_mask(torch.tensor([[[[0.0, float("-inf")]]]]), False, 3, 2,
                       torch.device("cpu"))
    assert vis.shape == (1, 1, 3, 2) and vis[..., 0].all() and not vis[..., 1].any()
    bottom_right = visible_mask(None, True, 2, 4, torch.device("cpu"))[0, 0]
    assert bottom_right.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_topk_weights_pads_past_the_keys() -> None:
    p = torch.tensor([[[[0.75, 0.0, 0.25]]]])
    w, idx = topk_weights(p, 5)
    assert w.tolist() == [[[[0.75, 0.25, 0.0, 0.0, 0.0]]]]
    assert idx.tolist() == [[[[0, 2, -1, -1, -1]]]]


def test_eager_attention_matches_sdpa_and_its_own_weights() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float64) for _ in range(3))
    keep = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    keep[0, ..., 4] = False
    out, lse, ent, keys, p, smax = eager_attention(q, k[:, :2], v[:, :2], keep, 8 ** -0.5,
                                                   False, None, None, 0.0)  # 2 kv-heads
    kx, vx = (t[:, :2].repeat_interleave(2, dim=1) for t in (k, v))
    ref = F.scaled_dot_product_attention(q, kx, vx, attn_mask=keep)
    torch.testing.assert_close(out, ref)
    s = (q @ kx.mT / math.sqrt(8)).masked_fill(~keep, float("-inf"))
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))
    torch.testing.assert_close(ent, -(p * p.clamp_min(1e-300).log()).sum(-1))
    torch.testing.assert_close(smax, s.amax(-1))
    assert keys[0].eq(4).all() and keys[1].eq(5).all()
