"""Top-k among exactly equal scores in the Triton kernel (TRITON_INTERPRET=1): the lowest key
indices are kept and reported in ascending key order, across key tiles (16 keys each in the
interpreter) and across key splits, as `hjplug.kernels.hj_attention` documents."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels.triton.hj_attention import hj_attention_fwd  # noqa: E402


def _expected(scores: torch.Tensor, k: int) -> list[int]:
    """The k largest scores of one row, equal scores by ascending key index (fp64 truth)."""
    order = sorted(range(scores.numel()), key=lambda j: (-float(scores[j]), j))
    return order[:k]


@pytest.mark.parametrize("splits", [1, 2, 3])
@pytest.mark.parametrize("topk", [2, 5])
def test_equal_scores_keep_the_lowest_keys(splits: int, topk: int) -> None:
    # keys 0–15 (tile 0) and 20–27 (tile 1) score 1; key 17 scores 2; the rest score −1
    D, Sk = 16, 48
    q = torch.ones(1, 1, 3, D)
    k = -torch.ones(1, 1, Sk, D)
    k[0, 0, :16] = 1.0
    k[0, 0, 20:28] = 1.0
    k[0, 0, 17] = 2.0
    v = torch.randn(1, 1, Sk, D)
    *_, tw, ti = hj_attention_fwd(q, k, v, None, 1.0 / D, False, -1, topk, splits=splits)
    scores = (k[0, 0] @ q[0, 0, 0]).double() / D
    want = _expected(scores, topk)
    assert ti is not None and tw is not None
    for row in range(3):
        assert ti[0, 0, row].tolist() == want
    p = torch.softmax(scores, -1)
    torch.testing.assert_close(tw[0, 0, 0].double(), p[want], rtol=1e-5, atol=1e-7)


def test_a_larger_late_key_evicts_the_highest_equal_key() -> None:
    # 16 equal keys fill the kept set in tile 0; a larger key in tile 1 must evict key 1, not 0
    D = 16
    q = torch.ones(1, 1, 1, D)
    k = torch.ones(1, 1, 32, D)
    k[0, 0, 16] = 2.0
    k[0, 0, 17:] = -1.0
    v = torch.randn(1, 1, 32, D)
    *_, ti = hj_attention_fwd(q, k, v, None, 0.25, False, -1, 2)
    assert ti is not None and ti[0, 0, 0].tolist() == [16, 0]
