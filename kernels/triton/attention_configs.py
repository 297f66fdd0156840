"""Autotune candidates of the HJ attention kernel (hj_attention and hopf_cole).

Chosen from two kinds of evidence:
- sm_90 resources, measured without a GPU by `benchmarks/sm90_resources.py` (registers,
  spills, shared memory → CTAs and warpgroups per SM). wgmma works per warpgroup (4 warps);
  a candidate that leaves one warpgroup per SM cannot overlap its softmax with its matrix
  multiplies. Example: attention bf16 D=128, 128×64/4 warps (128 KiB shared, 128 B spilled,
  one warpgroup per SM) was the slowest candidate on the H200 (1.57 ms against 1.19 ms).
- compile time: exact fp32 dots (FMA code, no tensor cores) and the unrolled top-k merge make
  large tiles slow to build (ptxas: ~50 s for one 128×64 fp32 top-4 variant for sm_90), so those
  variants get two small tiles only.

A full bias (one value per query and key, loaded as a BLOCK_M × BLOCK_N fp32 tile per step and
pipelined like k and v) adds num_stages such tiles to shared memory: 128×128 / 3 stages then
needs 256 KiB at D = 128 (H200 limit 227 KiB; OutOfResources on the device, 2026-11-28) and
240 KiB at D = 64, fp32 64×64 / 3 stages 256 KiB at D = 128. Those lists drop the tiles that
do not fit (`benchmarks/sm90_resources.py --only full_bias`).

`maxnreg=128` caps registers so that two 8-warp CTAs share an SM (four warpgroups): for the bf16
Hopf–Cole tile 128×64 this costs no spill (174 → 128 registers); for fp32 it spills 636 B and
gains nothing (shared memory already limits it to one CTA), so fp32 lists leave it out.
"""

from __future__ import annotations

import triton

__all__ = ["attention_configs"]


def _cfg(bm: int, bn: int, warps: int, stages: int, maxnreg: int | None = None
         ) -> triton.Config:
    kw = {"maxnreg": maxnreg} if maxnreg else {}
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages,
                         **kw)


def attention_configs(small_q: bool, kv_same: bool = False, small_d: bool = False,
                      exact_fp32: bool = False, topk: bool = False, half: bool = True,
                      full_bias: bool = False) -> list[triton.Config]:
    """Candidates for one kernel variant; the first is the one used when autotuning is off.

    small_q: ≤ 16 query rows (decode); kv_same: keys = values (Hopf–Cole); small_d: head dim
    ≤ 64; exact_fp32: ieee fp32 dots; topk: top-k merge compiled in; half: 16-bit inputs;
    full_bias: a bias tile per step (not one broadcast row).
    """
    if exact_fp32:
        return [_cfg(64, 64, 4, 2), _cfg(64, 32, 4, 2)]
    if small_q:
        return [_cfg(16, 64, 4, 3), _cfg(16, 128, 4, 3)]
    if kv_same:  # Hopf–Cole: one operand stream, one bias row
        if not half:  # tf32 tiles (64×128/4 warps dropped: 161 KiB, one warpgroup per SM)
            return [_cfg(128, 64, 8, 3), _cfg(64, 64, 4, 3)]
        return [_cfg(128, 64, 8, 3, 128),  # 2 CTAs, 4 warpgroups per SM, no spill
                _cfg(128, 64, 8, 3), _cfg(128, 128, 8, 3),  # 1 CTA, 2 warpgroups
                _cfg(64, 64, 4, 3),  # 3 CTAs
                _cfg(64, 128, 4, 3)]  # 2 CTAs (the pick of H200 runs 4–5, 0.91–0.95 ms)
    if topk:
        return [_cfg(128, 64, 4, 3), _cfg(64, 64, 4, 3)]
    if not half:  # tf32 attention (precision="tf32"): fp32 tiles need twice the shared memory
        if full_bias:  # 224 / 176 KiB at D = 128
            return [_cfg(128, 64, 8, 2), _cfg(64, 64, 4, 2)]
        return [_cfg(64, 64, 4, 3), _cfg(128, 64, 8, 2)]
    if not small_d:  # head dim 96/128: 128×64/4 warps leaves one warpgroup per SM: dropped
        if full_bias:  # 192 KiB; 128 KiB (340 B spilled); 224 KiB
            return [_cfg(128, 64, 8, 3), _cfg(128, 64, 8, 2, 128), _cfg(128, 128, 8, 2)]
        return [_cfg(128, 128, 8, 3), _cfg(128, 64, 8, 3),
                _cfg(128, 64, 8, 2, 128)]  # 4 warpgroups per SM, 32 B spilled
    cfgs = [_cfg(128, 64, 4, 3), _cfg(128, 128, 8, 3), _cfg(128, 64, 8, 3),
            _cfg(128, 64, 4, 4), _cfg(128, 128, 4, 3), _cfg(64, 64, 4, 3),
            _cfg(128, 64, 8, 3, 128)]  # causal: 173 → 127 registers, 4 warpgroups per SM
    if full_bias:  # 128×128 / 3 stages: 240 KiB
        return [c for c in cfgs if c.kwargs["BLOCK_N"] < 128]
    return cfgs
