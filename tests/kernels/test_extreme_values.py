"""Extreme values (huge / tiny scores, −inf / finfo.min / +inf / NaN biases, empty rows, tiny
shapes, ε from 1e-6 to 1e6) through the public ops on the reference twins, forward and backward,
against fp64 dense evaluations (tests/kernels/_extreme_cases.py; the same cases run on the Triton
kernels in interp/test_interp_extreme_values.py)."""

from __future__ import annotations

import math

import pytest
from _extreme_cases import (  # noqa: F401  (collected by pytest)
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
    monkeypatch.setenv("HJPLUG_KERNEL", "reference")
    return "reference"


@pytest.fixture
def hc_tol():
    return 1e-5


def test_reference_merge_splits_far_lse():
    from _extreme_cases import check_merge

    from hjplug.kernels.reference.split_merge import merge_splits

    ents = check_merge(merge_splits)
    assert len(ents) == 3  # −1e29 and −1e9 with equal splits, −1e9 with weights 2/3, 1/3
    for h in ents[:2]:  # two splits of 32 equal scores: H = log 32 + log 2, not 2·log 32
        assert abs(float(h) - math.log(64.0)) <= 1e-6
    w = (2 / 3, 1 / 3)  # chain rule: H = log 32 + H(w)
    assert abs(float(ents[2]) - (math.log(32.0) - sum(x * math.log(x) for x in w))) <= 1e-6
