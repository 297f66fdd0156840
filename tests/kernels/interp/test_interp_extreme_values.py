"""Extreme values through the public ops with HJPLUG_KERNEL=triton under TRITON_INTERPRET=1,
forward and backward against fp64 dense evaluations: the cases of
tests/kernels/_extreme_cases.py (also run on the reference twins by test_extreme_values.py).

Run by tests/kernels/test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/kernels: _extreme_cases

from _extreme_cases import (  # noqa: E402, F401  (collected by pytest)
    test_extreme_all_rows_masked,
    test_extreme_bias_one_key,
    test_extreme_bias_plus_inf_gives_nan_row,
    test_extreme_far_bias_row_backward,
    test_extreme_fp16_scores_above_65504,
    test_extreme_hopf_cole,
    test_extreme_hopf_cole_removed_atoms_grads,
    test_extreme_hopf_cole_small_eps_backward,
    test_extreme_huge_logits_backward,
    test_extreme_huge_logits_forward,
    test_extreme_mask_1e9_row_dv_sums_to_dout,
    test_extreme_nan_key_gives_nan_row,
    test_extreme_near_uniform_entropy,
    test_extreme_removed_bias_gives_finite_grads,
    test_extreme_sweep_eps_range_and_identical_row,
    test_extreme_tiny_shapes_and_empty_rows,
    test_extreme_topk_weights_far_bias_row,
)


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    return "triton"


@pytest.fixture
def hc_tol():
    return 2e-3  # fp32 Hopf–Cole on Triton multiplies in TF32 by design (api.hopf_cole docs)


def test_triton_merge_splits_far_lse():
    from _extreme_cases import check_merge

    from hjplug.kernels.triton.split_merge import merge_splits

    ents = check_merge(merge_splits)
    assert len(ents) == 3  # −1e29 and −1e9 with equal splits, −1e9 with weights 2/3, 1/3
    for h in ents[:2]:  # two splits of 32 equal scores: H = log 32 + log 2, not 2·log 32
        assert abs(float(h) - math.log(64.0)) <= 1e-6
    w = (2 / 3, 1 / 3)  # chain rule: H = log 32 + H(w)
    assert abs(float(ents[2]) - (math.log(32.0) - sum(x * math.log(x) for x in w))) <= 1e-6


@pytest.mark.parametrize("big", [-1e29, -1e9])
def test_triton_split_k_forward_far_bias_row(big):
    """A row whose 64 keys all sit at bias `big`: split over 2 programs it must give the unsplit
    result (uniform π: H = log 64, out = mean v), as the reference twin."""
    import math

    import torch

    from hjplug.kernels.reference.hj_attention import hj_attention as attn_ref
    from hjplug.kernels.triton import hj_attention as hja

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 3, 16, generator=g)
    k = torch.randn(1, 1, 64, 16, generator=g)
    v = torch.randn(1, 1, 64, 16, generator=g)
    b = torch.zeros(1, 1, 3, 64)
    b[:, :, 0, :] = big
    b[:, :, 1, :32] = -math.inf  # one empty split in a live row
    o, lse, ent, _, _ = hja.hj_attention_fwd(q, k, v, b, 0.25, False, -1, 0, splits=2)
    ref = attn_ref(q, k, v, scale=0.25, bias=b)
    assert abs(ent[0, 0, 0].item() - math.log(64)) <= 1e-6
    torch.testing.assert_close(o, ref.out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, ref.entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse, ref.lse, rtol=1e-6, atol=1e-6)
