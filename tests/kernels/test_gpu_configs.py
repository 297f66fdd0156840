"""Autotune candidate lists: variants that are slow to compile (exact fp32 dots, top-k) keep to
small tiles (a 128×64 fp32 top-4 variant took ~50 s in ptxas for sm_90; a list of six such
configs stalled an H200 check for minutes)."""

from __future__ import annotations

import pytest

pytest.importorskip("triton")

from hjplug.kernels.triton.attention_configs import attention_configs


def _tiles(cfgs):
    return [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) for c in cfgs]


@pytest.mark.parametrize("small_d", [False, True])
def test_slow_to_compile_variants_use_small_tiles(small_d: bool) -> None:
    for cfgs in (attention_configs(False, False, small_d, exact_fp32=True),
                 attention_configs(False, False, small_d, topk=True)):
        assert 1 <= len(cfgs) <= 2
        assert all(m * n <= 128 * 64 for m, n in _tiles(cfgs))
    assert len(attention_configs(False, False, small_d)) >= 3  # half precision keeps its search


def test_64_bit_offsets_only_for_huge_tensors() -> None:
    """The kernel's INT64 flag: set when an element offset reaches 2³¹ (strides counted, so a
    broadcast view counts once), off otherwise (32-bit offsets save registers)."""
    import torch

    from hjplug.kernels.triton.hj_attention import needs_int64

    small = torch.empty(4, 16, 4096, 128, device="meta")  # 2²⁵ elements
    huge = torch.empty(3, 16, 2**16, 1024, device="meta")  # 3·2³⁰ elements, never allocated
    assert not needs_int64(small, None)
    assert needs_int64(small, huge)
    assert not needs_int64(torch.empty(1, 1, 1, 2**20, device="meta").expand(64, 64, 2**20,
                                                                                 2**20))


def _key(c) -> tuple:
    return (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages)


@pytest.mark.parametrize("small_d", [False, True])
@pytest.mark.parametrize("half", [False, True])
def test_full_bias_lists_leave_out_tiles_that_overflow_shared_memory(small_d: bool,
                                                                     half: bool) -> None:
    """A full bias tile is pipelined like k and v. Measured for sm_90 (227 KiB per CTA): 128×128
    with 3 stages needs 256 KiB at D = 128 on the H200 (OutOfResources, 2026-11-28) and 240 KiB
    at D = 64; fp32 64×64 with 3 stages 256 KiB at D = 128. The first config (used when
    autotuning is off) must fit, and the list gets its own autotune key."""
    from hjplug.kernels.triton.hj_attention import kernel_key

    over = {(128, 128, 8, 3), (128, 128, 4, 3)} if half else {(64, 64, 4, 3)}
    with_bias = attention_configs(False, False, small_d, half=half, full_bias=True)
    assert with_bias and not {_key(c) for c in with_bias} & over
    plain = {_key(c) for c in attention_configs(False, False, small_d, half=half)}
    assert {_key(c) for c in with_bias} != plain or not plain & over
    assert kernel_key(False, False, small_d, False, False, half, True) != kernel_key(
        False, False, small_d, False, False, half, False)
