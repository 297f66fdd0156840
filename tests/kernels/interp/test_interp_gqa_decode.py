"""Grouped-query decode (Sq = 1, Hk < H) packs a group's query heads into the rows of one query
block (`hj_attention._packed_decode`): against the reference twin and the unpacked launch, under
TRITON_INTERPRET=1, with per-head / per-key biases, causal (moot for one query), top-k, splits."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels.reference.hj_attention import hj_attention as ref  # noqa: E402
from hjplug.kernels.triton import hj_attention as hja  # noqa: E402

CASES = [  # B, H, Hk, Sk, bias, causal, topk, splits
    (2, 8, 2, 100, None, False, 0, None),
    (1, 4, 1, 300, "head", True, 3, None),  # 1 program: keys split across programs
    (2, 6, 3, 37, "key", False, 2, None),
    (1, 16, 4, 300, "bool", False, 0, 3),
    (1, 4, 2, 1, None, True, 0, None),
    (1, 40, 2, 50, None, False, 0, None),  # 20 heads per group: more rows than one small block
]


def _bias(kind, B, H, Sk, g):
    if kind == "head":
        return torch.randn(B, H, 1, Sk, generator=g)
    if kind == "key":
        return torch.randn(Sk, generator=g)
    if kind == "bool":
        keep = torch.rand(B, 1, 1, Sk, generator=g) > 0.3
        keep[..., 0] = True
        return keep
    return None


@pytest.mark.parametrize(("B", "H", "Hk", "Sk", "bias", "causal", "topk", "splits"), CASES)
def test_packed_decode_matches_twin_and_unpacked(monkeypatch, B, H, Hk, Sk, bias, causal, topk,
                                                 splits):
    g = torch.Generator().manual_seed(Sk)
    q = torch.randn(B, H, 1, 32, generator=g)
    k = torch.randn(B, Hk, Sk, 32, generator=g)
    v = torch.randn(B, Hk, Sk, 32, generator=g)
    b = _bias(bias, B, H, Sk, g)
    calls = []
    real = hja._packed_decode
    monkeypatch.setattr(hja, "_packed_decode", lambda *a: calls.append(1) or real(*a))
    packed = hja.hj_attention_fwd(q, k, v, b, 0.2, causal, -1, topk, splits=splits)
    assert calls, "the packed path did not run"
    monkeypatch.setattr(hja, "PACK_GQA_DECODE", False)
    plain = hja.hj_attention_fwd(q, k, v, b, 0.2, causal, -1, topk, splits=splits)
    r = ref(q, k, v, scale=0.2, causal=causal, bias=b, topk=topk)
    want = (r.out, r.lse, r.entropy, r.topk_weights, r.topk_indices)
    for name, got, unpacked, w in zip(("out", "lse", "entropy", "topk_w", "topk_i"), packed,
                                      plain, want, strict=True):
        if w is None:
            assert got is None and unpacked is None
            continue
        assert got.shape == w.shape, name
        torch.testing.assert_close(got, unpacked, rtol=1e-6, atol=1e-6, msg=name)
        if name == "topk_i":
            assert torch.equal(got, w), name
        else:
            torch.testing.assert_close(got, w.to(got.dtype), rtol=2e-5, atol=2e-5, msg=name)
