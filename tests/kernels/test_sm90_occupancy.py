"""The half-precision autotune candidates of the timed problems, compiled for sm_90 here (no GPU
needed): each keeps at least two warpgroups per SM and spills at most 64 bytes. On the H200
the one candidate that broke this (attention bf16 D=128, 128×64/4 warps: one warpgroup per SM,
128 B spilled) was the slowest, 1.57 ms against 1.19 ms."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("triton")

if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("compiles for sm_90; not under the interpreter", allow_module_level=True)

from hjplug.kernels.triton.occupancy import Variant, candidates, measure

VARIANTS = [Variant("hopf_cole bf16 d128", "bf16", 128, kv_same=True, bias_row=True),
            Variant("hopf_cole fp32(tf32) d128", "fp32", 128, kv_same=True, bias_row=True),
            Variant("attention bf16 D128", "bf16", 128)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name.replace(" ", "-"))
def test_half_candidates_keep_two_warpgroups_per_sm(variant: Variant) -> None:
    try:
        rows = [measure(variant, cfg) for cfg in candidates(variant)]
    except (FileNotFoundError, ImportError) as exc:  # a Triton build without the CUDA tools
        pytest.skip(f"cannot compile for sm_90 here: {exc}")
    for r in rows:
        assert r.warpgroups_per_sm >= 2, r
        assert r.spill_bytes <= 64, r
    capped = [r for r in rows if " r128" in r.config]  # half precision only
    assert bool(capped) == (variant.dtype != "fp32"), rows
    assert all(r.regs <= 128 and r.warpgroups_per_sm == 4 for r in capped), capped


BACKWARD = [Variant(f"bwd D128 causal {k}", "bf16", 128, causal=True, kernel=k)
            for k in ("dkdv", "dq")] + [
    Variant("hopf_cole bwd dkdv", "bf16", 128, kv_same=True, bias_row=True, kernel="dkdv")]


@pytest.mark.parametrize("variant", BACKWARD, ids=lambda v: v.name.replace(" ", "-"))
def test_backward_candidates_do_not_spill(variant: Variant) -> None:
    """The backward keeps two fp32 [BLOCK_N, D] accumulators (dk, dv) in registers: a 128-key
    block on 4 warps spilled 2.4 KB at D=128; every candidate must stay (nearly) spill-free."""
    try:
        rows = [measure(variant, cfg) for cfg in candidates(variant)]
    except (FileNotFoundError, ImportError) as exc:
        pytest.skip(f"cannot compile for sm_90 here: {exc}")
    for r in rows:
        assert r.warpgroups_per_sm >= 2, r
        assert r.spill_bytes <= 64, r


def test_one_warpgroup_tile_is_detected() -> None:
    """The measurement itself can fail: the dropped D=128 tile reads one warpgroup per SM."""
    import triton

    cfg = triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_warps=4, num_stages=3)
    r = measure(Variant("attention bf16 D128", "bf16", 128), cfg)
    assert r.warpgroups_per_sm == 1 and r.limited_by == "shared memory", r
