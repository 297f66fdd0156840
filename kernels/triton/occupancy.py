"""Registers, spills, shared memory and occupancy of one HJ attention kernel variant on sm_90
(H100/H200), measured without a GPU.

The variant is compiled with `triton.compile` for GPUTarget("cuda", 90) and its PTX assembled by
Triton's bundled `ptxas -v`. Occupancy per SM follows from the sm_90 limits: 65 536 registers
(allocated per warp in units of 256), 228 KiB shared memory (1 KiB reserved per CTA), 2 048
threads. wgmma works per warpgroup (4 warps): warpgroups/SM = CTAs/SM · warps/4; one warpgroup
per SM cannot overlap its softmax with its matrix multiplies.
The launch-time specialisation is mimicked: pointers and integer arguments 16-divisible, unit
strides constant. A variant takes 1–3 s to compile.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hjplug.kernels.triton._config import next_pow2
from hjplug.kernels.triton.attention_configs import attention_configs
from hjplug.kernels.triton.hj_attention import _hj_attn_fwd
from hjplug.kernels.triton.hj_attention_bwd import _bwd_dkdv, _bwd_dq, bwd_configs

__all__ = ["Resources", "Variant", "candidates", "measure"]

REGS_PER_SM = 65536
SMEM_PER_SM = 228 * 1024
SMEM_PER_CTA_RESERVED = 1024
THREADS_PER_SM = 2048


@dataclass(frozen=True)
class Variant:
    """One kernel specialisation as a timed problem launches it."""

    name: str
    dtype: str  # "bf16" | "fp16" | "fp32"
    D: int
    causal: bool = False
    kv_same: bool = False
    bias_row: bool = False  # a [.., 1, Sk] bias: one row vector per tile
    full_bias: bool = False  # a bias with its own value per (query, key): one tile per tile
    small_q: bool = False  # ≤ 16 query rows (decode)
    topk: int = 0
    dot_prec: str = "tf32"  # fp32 only: "ieee" exact, "tf32"
    kernel: str = "fwd"  # "fwd" | "dkdv" | "dq" (the backward's two kernels)


@dataclass(frozen=True)
class Resources:
    variant: str
    config: str
    regs: int
    spill_bytes: int
    shared_bytes: int
    ctas_per_sm: int
    warpgroups_per_sm: int
    limited_by: str
    compile_s: float


def candidates(v: Variant) -> list[triton.Config]:
    """The autotune candidates the launcher uses for this variant."""
    exact = v.dtype == "fp32" and v.dot_prec == "ieee"
    if v.kernel != "fwd":
        return bwd_configs(v.kernel, exact, v.dtype != "fp32", v.D <= 64)
    return attention_configs(v.small_q, v.kv_same, v.D <= 64 and not v.kv_same, exact,
                             v.topk > 0, v.dtype != "fp32", v.full_bias)


def _source(v: Variant, cfg: triton.Config) -> ASTSource:
    fn = {"fwd": _hj_attn_fwd, "dkdv": _bwd_dkdv, "dq": _bwd_dq}[v.kernel]
    names = fn.arg_names
    ptr_types = {"Q": v.dtype, "K": v.dtype, "V": v.dtype, "BIAS": "fp32", "OUT": "fp32",
                 "LSE": "fp32", "ENT": "fp32", "TOPV": "fp32", "TOPI": "i32", "DO": v.dtype,
                 "PARTS": "fp32", "C": "fp32", "GH": "fp32", "DK": v.dtype, "DV": v.dtype,
                 "DB": "fp32", "DQ": v.dtype}
    unit = {"sqd", "skd", "svd", "sod", "sbn", "sdd"}  # contiguous last dims: specialised to 1
    small = {"H", "GROUP", "offset", "WINDOW"}  # not assumed 16-divisible
    sig: dict[str, str] = {}
    consts: dict[str, object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for i, n in enumerate(names):
        if n in ptr_types:
            sig[n] = "*" + ptr_types[n]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif n in ("qk_scale", "scale"):
            sig[n] = "fp32"
        elif n in unit:
            sig[n], consts[n] = "constexpr", 1
        elif i in fn.constexprs:
            sig[n] = "constexpr"
        else:
            sig[n] = "i32"
            if n not in small:
                attrs[(i,)] = [["tt.divisibility", 16]]
    tk = v.topk
    prec = v.dot_prec if v.dtype == "fp32" else "tf32"
    common = dict(BLOCK_D=v.D, CAUSAL=v.causal, HAS_WINDOW=False,
                  HAS_BIAS=v.bias_row or v.full_bias,
                  BIAS_ROW=v.bias_row, DOT_PREC=prec, INT64=False)
    if v.kernel == "fwd":
        consts.update(cfg.kwargs, **common, EVEN_D=True, KV_SAME=v.kv_same, TOPK=tk,
                      TOPK_PAD=next_pow2(tk) if tk else 1,
                      ROUND_P=v.dtype == "fp32" and v.dot_prec == "tf32" and v.kv_same)
    else:  # the backward (edge tiles masked inside, as the forward)
        extra = ({"DB_ROW": v.bias_row, "KV_SAME": v.kv_same} if v.kernel == "dkdv"
                 else {"DB_FULL": False, "DB_ATOMIC": False})
        consts.update(cfg.kwargs, **common, **extra)
    return ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)


def _ptxas(arch: int) -> str:
    """The ptxas Triton itself uses for this architecture (its bundled copy)."""
    from triton.backends.nvidia.compiler import get_ptxas

    try:
        return str(get_ptxas(arch).path)
    except TypeError:  # older Triton: get_ptxas() without the architecture
        return str(get_ptxas().path)  # type: ignore[call-arg]


def measure(v: Variant, cfg: triton.Config, arch: int = 90) -> Resources:
    """Compile one candidate for sm_`arch` and read its resources from `ptxas -v`."""
    t = time.time()
    k = triton.compile(_source(v, cfg), target=GPUTarget("cuda", arch, 32),
                       options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages,
                                **({"maxnreg": cfg.maxnreg} if cfg.maxnreg else {})})
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "k.ptx"
        ptx.write_text(k.asm["ptx"])
        log = subprocess.run([_ptxas(arch), f"-arch=sm_{arch}a", "-v", str(ptx), "-o",
                              str(Path(tmp) / "k.cubin")], capture_output=True, text=True,
                             check=True).stderr
    secs = time.time() - t
    regs = int(re.search(r"Used (\d+) registers", log).group(1))  # type: ignore[union-attr]
    spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", log))
    shared = int(k.metadata.shared)
    warps = cfg.num_warps
    per_warp = -(-regs * 32 // 256) * 256
    by = {"registers": REGS_PER_SM // (per_warp * warps),
          "shared memory": SMEM_PER_SM // (shared + SMEM_PER_CTA_RESERVED),
          "threads": THREADS_PER_SM // (32 * warps)}
    limit = min(by, key=by.__getitem__)
    ctas = by[limit]
    label = (f"{cfg.kwargs['BLOCK_M']}x{cfg.kwargs['BLOCK_N']} w{warps} s{cfg.num_stages}"
             + (f" r{cfg.maxnreg}" if cfg.maxnreg else ""))
    return Resources(v.name, label, regs, spill, shared, ctas, ctas * warps // 4, limit,
                     round(secs, 1))
