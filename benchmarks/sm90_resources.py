"""Registers, spills, shared memory and occupancy on sm_90 of every hj_attention / hopf_cole
autotune candidate of the timed problems, measured on a machine without a GPU
(see kernels/triton/occupancy.py for the method).

    python benchmarks/sm90_resources.py [--json PATH]
        [--only hopf_cole|attention|full_bias|backward|all]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import triton

from hjplug.kernels.triton.occupancy import Variant, candidates, measure

VARIANTS = {
    "attention": [Variant("attention bf16 D64", "bf16", 64),
                  Variant("attention bf16 D64 causal", "bf16", 64, causal=True),
                  Variant("attention bf16 D128", "bf16", 128),
                  Variant("attention fp32 D64 exact", "fp32", 64, dot_prec="ieee"),
                  Variant("attention bf16 D64 top-4", "bf16", 64, topk=4)],
    "hopf_cole": [Variant("hopf_cole bf16 d128", "bf16", 128, kv_same=True, bias_row=True),
                  Variant("hopf_cole fp32(tf32) d128", "fp32", 128, kv_same=True,
                          bias_row=True)],
    "full_bias": [Variant("attention bf16 D128 full bias", "bf16", 128, full_bias=True),
                  Variant("attention bf16 D64 full bias", "bf16", 64, full_bias=True),
                  Variant("attention tf32 D128 full bias", "fp32", 128, full_bias=True)],
    "backward": [Variant(f"{name} {kern}", "bf16", D, causal=c, kernel=kern, **kw)
                 for name, D, c, kw in (("attention bwd bf16 D64", 64, False, {}),
                                        ("attention bwd bf16 D128 causal", 128, True, {}),
                                        ("hopf_cole bwd bf16 d128", 128, False,
                                         {"bias_row": True, "kv_same": True}))
                 for kern in ("dkdv", "dq")],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["all", *VARIANTS], default="all")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    groups = list(VARIANTS) if args.only == "all" else [args.only]
    rows = []
    print(f"triton {triton.__version__}, target sm_90a (compiled here, no GPU)")
    print(f"{'variant':30} {'config':16} {'regs':>4} {'spill':>5} {'smem KiB':>8} "
          f"{'CTA/SM':>6} {'WG/SM':>5}  limited by")
    for g in groups:
        for v in VARIANTS[g]:
            for cfg in candidates(v):
                r = measure(v, cfg)
                rows.append(r)
                flag = "  <- one warpgroup per SM" if r.warpgroups_per_sm < 2 else ""
                print(f"{r.variant:30} {r.config:16} {r.regs:4d} {r.spill_bytes:5d} "
                      f"{r.shared_bytes / 1024:8.1f} {r.ctas_per_sm:6d} "
                      f"{r.warpgroups_per_sm:5d}  {r.limited_by}{flag}", flush=True)
    if args.json:
        from hjplug.paper._common import atomic_write_text

        atomic_write_text(args.json, json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
