"""One-call GPU check of hjplug's fused kernels: correctness, then speed beside the baselines.

Run on a CUDA machine (H100/H200; torch ≥ 2.11, triton ≥ 3.6; hjplug need not be installed):

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py

Correctness (fresh random inputs every check, outputs poisoned with NaN before each run, never
zeros): the kernel's error against an fp32 (or fp64) reference must be at most 2× PyTorch's own
error at the same precision against the same reference (floor 1e-5 for fp32-only paths).
Every autotune candidate of the timed variants (hopf_cole, D = 128, D = 64, top-k, decode) is
also checked once, each on a ragged case (GQA, bias, window, odd lengths), time-boxed to 90 s.
Speed: CUDA events, warm-up, medians, inputs larger than L2 (hopf_cole rotates 4 input sets).
Prints a table last; writes JSON to $OUT/gpu_check.json (else /tmp/gpu_check.json).
"""

from __future__ import annotations

import math
import sys
import time

from _gpu_common import (  # noqa: F401  (first: sets TRITON_INTERPRET)
    DEV,
    DRY,
    ROOT,
    T0,
    HopfColeInputs,
    baseline_unavailable,
    bench,
    check_vs_torch,
    finish,
    log,
    plain_hopf_cole,
    rel,
    run_section,
    sync,
)

# isort: split
import torch
import torch.nn.functional as F
import triton

from hjplug.kernels.triton import hj_attention as hja
from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd
from hjplug.kernels.triton.hopf_cole import hopf_cole_fwd

# the Triton interpreter multiplies bf16 wrongly (numpy has no bf16): dry runs use fp16
BF16 = torch.float16 if DRY else torch.bfloat16


def sz(n: int, dry: int) -> int:
    """The real size, or a tiny one in dry mode."""
    return dry if DRY else n


RESULTS: dict = {"checks": [], "timings": [], "errors": []}
CONFIG_CHECK_S = 120  # time box of correctness_every_config
ROWS: list[tuple] = []


def check(name: str, ours: float, torch_err: float, floor: float = 0.0) -> bool:
    return check_vs_torch(RESULTS, name, ours, torch_err, floor)


def section(fn):
    run_section(fn, RESULTS)


# ------------------------------------------------------------------------------- references
def attn_ref32(q, k, v, scale, causal, bias=None, window=-1):
    """fp32 materialised reference: (out, lse, entropy) on upcast inputs."""
    H, Sq = q.shape[1], q.shape[2]
    g = H // k.shape[1]
    kf = k.float().repeat_interleave(g, 1)
    vf = v.float().repeat_interleave(g, 1)
    s = (q.float() @ kf.transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias.float()
    Sk = k.shape[2]
    i = torch.arange(Sq, device=q.device)[:, None] + (Sk - Sq)
    j = torch.arange(Sk, device=q.device)[None, :]
    ok = torch.ones(Sq, Sk, dtype=torch.bool, device=q.device)
    if causal:
        ok &= j <= i
    if window > 0:
        ok &= j > i - window
        if not causal:
            ok &= j < i + window
    s = s.masked_fill(~ok, float("-inf"))
    lse = torch.logsumexp(s, -1)
    logp = s - lse[..., None]
    p = logp.exp()
    ent = -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)
    return p @ vf, lse, ent, s


def eager_entropy(q, k, v, scale, causal):
    """Today's way to get attribution entropy: materialise softmax, its lse and entropy, P·V."""
    s = (q @ k.transpose(-1, -2)).float() * scale
    if causal:
        S = q.shape[2]
        s = s.masked_fill(torch.ones(S, S, dtype=torch.bool, device=q.device).triu(1),
                          float("-inf"))
    lse = torch.logsumexp(s, -1)
    logp = s - lse[..., None]
    p = logp.exp()
    ent = -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)
    return p.to(v.dtype) @ v, lse, ent


def sdpa(q, k, v, causal, backend):
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel([backend]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


# ------------------------------------------------------------------------------ correctness
def check_attention_case(B: int, H: int, Hk: int, Sq: int, Sk: int, D: int, dt: torch.dtype,
                         causal: bool, has_bias: bool, window: int, topk: int,
                         label: str = "") -> None:
    """One attention case: fresh inputs, poisoned outputs (set by the caller), the 2× rule
    against fp32 for out / lse / entropy (and top-k)."""
    name = f"attn{label} B{B} H{H}/{Hk} Sq{Sq} Sk{Sk} D{D} {str(dt)[6:]} c{int(causal)}" \
           f"{' bias' if has_bias else ''}{f' w{window}' if window > 0 else ''}" \
           f"{f' top{topk}' if topk else ''}"
    q = torch.randn(B, H, Sq, D, device=DEV, dtype=dt)
    k = torch.randn(B, Hk, Sk, D, device=DEV, dtype=dt)
    v = torch.randn(B, Hk, Sk, D, device=DEV, dtype=dt)
    bias = torch.randn(B, 1, Sq, Sk, device=DEV, dtype=dt) if has_bias else None
    scale = D ** -0.5
    o, lse, ent, tw, ti = hja.hj_attention_fwd(q, k, v, bias, scale, causal, window, topk)
    ro, rlse, rent, s32 = attn_ref32(q, k, v, scale, causal, bias, window)
    # PyTorch's own error at this precision: SDPA output; eager stats from low-precision
    # scores (the scores a stock model would materialise)
    g = H // Hk
    kk, vv = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    if has_bias or window > 0 or Sq != Sk:
        add = torch.zeros_like(s32).masked_fill(~torch.isfinite(s32), float("-inf"))
        if bias is not None:
            add = add + bias.float()
        t_out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=add.to(dt), scale=scale)
    else:  # default backend choice: FLASH for fp16/bf16
        t_out = F.scaled_dot_product_attention(q, kk, vv, is_causal=causal, scale=scale)
    s_lo = ((q @ kk.transpose(-1, -2)) * scale).float()
    if bias is not None:
        s_lo = s_lo + bias.float()
    s_lo = s_lo.masked_fill(~torch.isfinite(s32), float("-inf"))
    t_lse = torch.logsumexp(s_lo, -1)
    lp = s_lo - t_lse[..., None]
    t_ent = -(lp.exp() * lp.masked_fill(~torch.isfinite(lp), 0.0)).sum(-1)
    floor = 1e-5 if dt == torch.float32 else 0.0
    check(name + " out", rel(o, ro), rel(t_out, ro), floor)
    check(name + " lse", rel(lse, rlse), rel(t_lse, rlse), max(floor, 1e-6))
    check(name + " entropy", rel(ent, rent), rel(t_ent, rent), max(floor, 1e-6))
    if topk:
        rw, ri = torch.softmax(s32, -1).topk(topk, -1)
        check(name + " topk weights", rel(tw, rw), rel(lp.exp().topk(topk, -1)[0], rw),
              1e-6)
        agree = float((ti == ri).float().mean())
        RESULTS["checks"].append(dict(name=name + " topk index agreement", ours=agree,
                                      ok=agree > 0.95))
        log(f"{'PASS' if agree > 0.95 else 'FAIL'} {name} topk index agreement {agree:.4f}")
    del q, k, v, s32, s_lo, lp


def correctness_attention():
    hja.POISON, hja.AUTOTUNE = True, False
    n = 1 if DRY else 0  # dry: shrink sequence lengths
    cases = [  # (B, H, Hk, Sq, Sk, D, dtype, causal, bias, window, topk)
        (2, 8, 8, 1024 >> 4 * n, 1024 >> 4 * n, 64, BF16, False, False, -1, 0),
        (2, 8, 8, 1024 >> 4 * n, 1024 >> 4 * n, 128, BF16, True, False, -1, 0),
        (2, 8, 2, 1000 >> 4 * n, 1000 >> 4 * n, 96, torch.float16, True, False, -1, 0),
        (2, 8, 8, 777 >> 4 * n, 777 >> 4 * n, 32, BF16, False, True, -1, 0),
        (1, 8, 8, 1024 >> 4 * n, 1024 >> 4 * n, 64, BF16, True, False, 20, 4),
        (4, 8, 2, 1, 4099 >> 4 * n, 128, BF16, True, False, -1, 0),  # split-K
        (2, 4, 4, 300 >> 4 * n, 300 >> 4 * n, 64, torch.float32, True, False, -1, 0),
    ]
    for case in cases:
        check_attention_case(*case)
    hja.POISON = False

    # the public path (custom op + registry) runs the Triton kernel on CUDA
    import hjplug.kernels as K

    q = torch.randn(1, 4, 256, 64, device=DEV, dtype=BF16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    choice = K.backend_for("hj_attention", q, k, v, head_dim=64)
    r = K.hj_attention(q, k, v, causal=True)
    direct = hja.hj_attention_fwd(q, k, v, None, 64 ** -0.5, True, -1, 0)
    same = bool((r.out == direct[0]).all()) and bool((r.entropy == direct[2]).all())
    RESULTS["checks"].append(dict(name="public op dispatches to triton",
                                  ours=choice.backend, ok=choice.backend == "triton" and same))
    log(f"public op backend={choice.backend} identical={same}")
    hja.AUTOTUNE = True


def check_hopf_cole_case(M: int, N: int, d: int, dt: torch.dtype, label: str = "") -> None:
    """One hopf_cole case (ε = 0.5, tf32 for fp32): the 2× rule against fp64, floor 1e-5."""
    eps = 0.5
    x = torch.randn(M, d, device=DEV, dtype=dt)
    W = (torch.randn(N, d, device=DEV) / math.sqrt(d)).to(dt)
    b = torch.randn(N, device=DEV, dtype=dt)
    # dry runs: PyTorch on the CPU has no TF32 to compare with, so both sides run exact fp32
    prec = "ieee" if DRY else "tf32"
    val, grad, ent, _, _ = hopf_cole_fwd(x, W, b, eps, 0, precision=prec)
    z64 = (x.double() @ W.double().T + b.double()) / eps
    lse64 = torch.logsumexp(z64, -1)
    p64 = torch.softmax(z64, -1)
    r_val, r_grad, r_ent = eps * lse64, p64 @ W.double(), lse64 - (p64 * z64).sum(-1)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # PyTorch at the same (tf32) precision
    z = (x @ W.T + b) / eps
    t_lse = torch.logsumexp(z.float(), -1)
    p = torch.softmax(z.float(), -1)
    t_val, t_grad, t_ent = eps * t_lse, p.to(dt) @ W, t_lse - (p * z.float()).sum(-1)
    torch.backends.cuda.matmul.allow_tf32 = tf32_before
    name = f"hopf_cole{label} M{M} N{N} d{d} {str(dt)[6:]}"
    check(name + " value", rel(val, r_val), rel(t_val, r_val), 1e-5)
    check(name + " grad", rel(grad, r_grad), rel(t_grad, r_grad), 1e-5)
    check(name + " entropy", rel(ent, r_ent), rel(t_ent, r_ent), 1e-5)


def correctness_hopf_cole():
    hja.POISON = True
    for dt in (torch.float32, BF16):
        check_hopf_cole_case(sz(1024, 40), sz(16384, 300), 128, dt)
    hja.POISON = False


def correctness_every_config():
    """Every autotune candidate of the timed variants (not only the first, which the checks
    above use) on one ragged case each: GQA, a float bias, a window, odd lengths, poisoned
    outputs. Time-boxed (CONFIG_CHECK_S): what did not fit is logged as skipped."""
    hja.POISON, hja.AUTOTUNE = True, True
    n = 1 if DRY else 0
    variants = [  # (label, attention_configs args, case or "hopf_cole"); most timed first
        ("hopf_cole", (False, True), "hopf_cole"),
        # attention_configs(small_q, kv_same, small_d, exact_fp32, topk, half, full_bias)
        ("D128 bias", (False, False, False, False, False, True, True),
         (2, 8, 2, 333 >> 3 * n, 517 >> 3 * n, 128, BF16, False, True, 100 >> 3 * n, 0)),
        ("D128", (False, False, False), (2, 8, 2, 333 >> 3 * n, 517 >> 3 * n, 128, BF16, True,
                                         False, -1, 0)),
        ("D64 bias", (False, False, True, False, False, True, True),
         (2, 8, 2, 333 >> 3 * n, 517 >> 3 * n, 64, BF16, True, True, 100 >> 3 * n, 0)),
        ("D64", (False, False, True), (2, 8, 2, 333 >> 3 * n, 517 >> 3 * n, 64, BF16, False,
                                       False, -1, 0)),
        ("top-k bias", (False, False, True, False, True, True, True),
         (1, 4, 2, 257 >> 3 * n, 301 >> 3 * n, 64, BF16, True, True, -1, 4)),
        ("decode bias", (True, False, False, False, False, True, True),
         (3, 8, 2, 1, 3001 >> 3 * n, 128, BF16, True, True, -1, 0)),
    ]
    real = hja.attention_configs
    t0, skipped = time.time(), []
    try:
        for label, args, case in variants:
            for cfg in real(*args):
                tag = (f" [{label} {cfg.kwargs['BLOCK_M']}x{cfg.kwargs['BLOCK_N']} "
                       f"w{cfg.num_warps} s{cfg.num_stages}"
                       + (f" r{cfg.maxnreg}" if cfg.maxnreg else "") + "]")
                if time.time() - t0 > CONFIG_CHECK_S:
                    skipped.append(tag)
                    continue
                hja.attention_configs = lambda *a, cfg=cfg, **k: [cfg]
                hja._AUTOTUNED.clear()
                if case == "hopf_cole":
                    check_hopf_cole_case(sz(333, 40), sz(5000, 300), 128, BF16, tag)
                else:
                    check_attention_case(*case, label=tag)
    finally:
        hja.attention_configs = real
        hja._AUTOTUNED.clear()
        hja.POISON = False
    if skipped:
        RESULTS["errors"].append(f"every-config check: {len(skipped)} configs skipped "
                                 f"(over {CONFIG_CHECK_S} s): {skipped}")
        log(f"every-config check: skipped {skipped}")


def correctness_sweep():
    hja.POISON = True
    from hjplug.math import entropy

    eps = torch.logspace(-1, 1, 16, dtype=torch.float64)
    z = torch.randn(sz(2048, 20), sz(4096, 100), device=DEV) * 3
    ref = torch.stack([entropy(z.double(), float(e)) for e in eps], -1)
    tor = torch.stack([entropy(z, float(e)) for e in eps], -1)
    for method in ("online", "kouter"):
        h = entropy_sweep_fwd(z, eps, method=method)
        check(f"entropy_sweep 2048x4096 K16 fp32 {method}", rel(h, ref), rel(tor, ref), 1e-5)
    L = sz(512, 40)
    q = torch.randn(1, 8, L, 64, device=DEV, dtype=BF16)
    k = torch.randn(1, 2, L, 64, device=DEV, dtype=BF16)
    hq = entropy_sweep_fwd(None, eps[:4], q=q, k=k, causal=True)
    s = q.float() @ k.float().repeat_interleave(4, 1).transpose(-1, -2)
    s = s.masked_fill(torch.ones(L, L, dtype=torch.bool, device=DEV).triu(1), float("-inf"))
    ref = torch.stack([entropy(s.double(), float(e)) for e in eps[:4]], -1)
    s_lo = (q @ k.repeat_interleave(4, 1).transpose(-1, -2)).float().masked_fill(
        ~torch.isfinite(s), float("-inf"))
    tor = torch.stack([entropy(s_lo, float(e)) for e in eps[:4]], -1)
    check("entropy_sweep q/k 8x512 D64 bf16 causal K4", rel(hq, ref), rel(tor, ref), 1e-5)
    hja.POISON = False


# ------------------------------------------------------------------------------------ timing
def time_attention():
    for D in (64, 128):
        for causal in (False, True):
            _time_attention_case(sz(4, 1), sz(16, 2), sz(4096, 48), D, causal)


def _time_attention_case(B: int, H: int, S: int, D: int, causal: bool) -> None:
    from torch.nn.attention import SDPBackend

    q = torch.randn(B, H, S, D, device=DEV, dtype=BF16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    scale = D ** -0.5
    flops = 4 * B * H * S * S * D * (0.5 if causal else 1.0)
    t0 = time.time()
    hja.hj_attention_fwd(q, k, v, None, scale, causal, -1, 0)  # autotune + compile
    sync()
    tune_s = time.time() - t0
    res = {"ours": bench(lambda: hja.hj_attention_fwd(q, k, v, None, scale, causal,
                                                      -1, 0))}
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION),
                     ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("mem_efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            res[name] = bench(lambda be=be: sdpa(q, k, v, causal, be))
        except Exception as exc:
            res[name] = float("nan")
            baseline_unavailable(RESULTS, f"sdpa {name}", exc)
    res["eager+entropy"] = bench(lambda: eager_entropy(q, k, v, scale, causal), reps=5,
                                 warmup=1)
    latency = {  # one isolated call, host launch overhead included
        "ours": bench(lambda: hja.hj_attention_fwd(q, k, v, None, scale, causal, -1, 0),
                      synced=True),
        "flash": bench(lambda: sdpa(q, k, v, causal, SDPBackend.FLASH_ATTENTION), synced=True),
    }
    if not DRY:
        torch.cuda.empty_cache()
    # the autotuned config, checked on 2 heads of the timed problem (poisoned outputs)
    hja.POISON = True
    o, lse, ent, _, _ = hja.hj_attention_fwd(q, k, v, None, scale, causal, -1, 0)
    hja.POISON = False
    qs, ks, vs = q[:1, :2], k[:1, :2], v[:1, :2]
    ro, rlse, rent, _ = attn_ref32(qs, ks, vs, scale, causal)
    fo = sdpa(qs, ks, vs, causal, SDPBackend.FLASH_ATTENTION)
    nm = f"attn timed B{B} H{H} S{S} D{D} c{int(causal)} (tuned config)"
    check(nm + " out", rel(o[:1, :2], ro), rel(fo, ro))
    check(nm + " lse", rel(lse[:1, :2], rlse), 1e-6, 1e-5)
    check(nm + " entropy", rel(ent[:1, :2], rent), 1e-6, 1e-4)
    del ro, rlse, rent
    cfg, cfg_ms = tuned(hja.kernel_key(False, small_d=D <= 64))
    entry = dict(op="hj_attention", B=B, H=H, S=S, D=D, causal=causal, dtype="bf16",
                 ms=res, tflops={k_: flops / (t * 1e-3) / 1e12 for k_, t in res.items()},
                 vs_flash=res["flash"] / res["ours"],
                 vs_eager=res["eager+entropy"] / res["ours"],
                 vs_cudnn=res["cudnn"] / res["ours"], tune_s=tune_s, best_config=cfg,
                 config_ms=cfg_ms, synced_latency_ms=latency)
    RESULTS["timings"].append(entry)
    ROWS.append((f"hj_attention D{D} c{int(causal)}", res["ours"],
                 f"flash {res['flash']:.3f} / cudnn {res['cudnn']:.3f} / "
                 f"eager+H {res['eager+entropy']:.2f}",
                 f"{entry['vs_flash']:.2f}x flash, {entry['vs_eager']:.1f}x eager",
                 f"{entry['tflops']['ours']:.0f} TF/s"))
    log(f"attention D{D} causal={causal}: {res} synced latency {latency} (tune {tune_s:.1f}s, "
        f"{cfg}) all: {cfg_ms}")


def tuned(key: str) -> tuple[str | None, dict[str, float] | None]:
    """The autotuner's pick for one kernel variant and its own per-config timings (ms, kernel
    only, cold L2) of the last tuning run."""
    kern = hja._AUTOTUNED.get(key)
    if kern is None or getattr(kern, "best_config", None) is None:
        return None, None
    timings = getattr(kern, "configs_timings", None) or {}
    return str(kern.best_config), {str(c): (t[0] if isinstance(t, list | tuple) else t)
                                   for c, t in timings.items()}


def time_hopf_cole():
    for dt in (torch.float32, BF16):
        _time_hopf_cole_case(sz(4096, 40), sz(65536, 300), 128, 0.5, dt)


def _time_hopf_cole_case(M: int, N: int, d: int, eps: float, dt: torch.dtype) -> None:
    data = HopfColeInputs(M, N, d, dt)
    sets = data.sets

    def ours():
        return hopf_cole_fwd(*data.next(), eps, 0)

    def plain():
        return plain_hopf_cole(*data.next(), eps)

    ours()
    sync()
    res, mem = {}, {}
    for name, fn in (("ours", ours), ("plain", plain)):
        if not DRY:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        base = 0 if DRY else torch.cuda.memory_allocated()
        res[name] = bench(fn, reps=15)
        mem[name] = 0.0 if DRY else (torch.cuda.max_memory_allocated() - base) / 2**20
    latency = {"ours": bench(ours, reps=15, synced=True),  # one isolated call, host included
               "plain": bench(plain, reps=15, synced=True)}
    if dt == torch.float32:
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        res["plain_tf32"] = bench(plain, reps=15)
        torch.backends.cuda.matmul.allow_tf32 = before
    x, W, b = sets[0]
    hja.POISON = True
    val, grad, ent, _, _ = hopf_cole_fwd(x, W, b, eps, 0)
    hja.POISON = False
    z64 = (x[:256].double() @ W.double().T + b.double()) / eps
    lse64 = torch.logsumexp(z64, -1)
    p64 = torch.softmax(z64, -1)
    nm = f"hopf_cole timed {str(dt)[6:]} (tuned config, 256 rows)"
    check(nm + " value", rel(val[:256], eps * lse64), 0.0, 3e-3)
    check(nm + " grad", rel(grad[:256], p64 @ W.double()), 0.0, 1e-2)
    check(nm + " entropy", rel(ent[:256], lse64 - (p64 * z64).sum(-1)), 0.0, 1e-2)
    del z64, p64
    cfg, cfg_ms = tuned(hja.kernel_key(False, kv_same=True, half=dt != torch.float32))
    entry = dict(op="hopf_cole", M=M, N=N, d=d, dtype=str(dt)[6:], ms=res, peak_mib=mem,
                 best_config=cfg, config_ms=cfg_ms, synced_latency_ms=latency,
                 speedup=res["plain"] / res["ours"],
                 speedup_vs_tf32=res.get("plain_tf32", res["plain"]) / res["ours"])
    RESULTS["timings"].append(entry)
    extra = f" / tf32 {res['plain_tf32']:.2f}" if "plain_tf32" in res else ""
    ROWS.append((f"hopf_cole {str(dt)[6:]}", res["ours"], f"plain {res['plain']:.2f}{extra}",
                 f"{entry['speedup']:.1f}x (vs tf32 {entry['speedup_vs_tf32']:.1f}x)",
                 f"peak {mem['ours']:.0f} vs {mem['plain']:.0f} MiB"))
    log(f"hopf_cole {dt}: {res} synced {latency} peak MiB {mem} config {cfg} all: {cfg_ms}")


def plain_entropy(z: torch.Tensor, e: float) -> torch.Tensor:
    """One plain PyTorch entropy pass (the baseline: how a user writes H(softmax(z/ε)))."""
    lp = torch.log_softmax(z / e, dim=-1)
    return -(lp.exp() * lp).sum(-1)


def time_sweep():
    eps = torch.logspace(-1, 1, 16, dtype=torch.float64)
    R, N = sz(16384, 20), sz(4096, 100)
    z = torch.randn(R, N, device=DEV) * 3  # 256 MiB, > L2
    res = {}
    for method in ("online", "kouter"):
        entropy_sweep_fwd(z, eps, method=method)
        sync()
        res[method] = bench(lambda method=method: entropy_sweep_fwd(z, eps, method=method))
    res["16 passes"] = bench(lambda: [plain_entropy(z, float(e)) for e in eps], reps=10)
    from hjplug.kernels.triton import entropy_sweep as esw

    cfgs = {k_: str(getattr(v, "best_config", None)) for k_, v in esw._AUTOTUNED.items()}
    entry = dict(op="entropy_sweep", rows=R, N=N, K=16, dtype="fp32", ms=res, configs=cfgs,
                 speedup={m: res["16 passes"] / res[m] for m in ("online", "kouter")})
    RESULTS["timings"].append(entry)
    for m in ("online", "kouter"):
        ROWS.append((f"entropy_sweep K16 {m}", res[m], f"16 passes {res['16 passes']:.2f}",
                     f"{entry['speedup'][m]:.1f}x", ""))
    log(f"entropy_sweep: {res} {cfgs}")


def correctness_edges():
    """NaN scores give NaN rows (whatever the tiling or split), no keys give empty rows: the
    reference twins' behaviour, on the card's own max / NaN semantics."""
    hja.POISON = True
    g = torch.Generator(device=DEV).manual_seed(7)
    for Sk, splits, bias in ((sz(4096, 64), None, False), (sz(4096, 64), 4, True),
                             (sz(4093, 61), None, True)):
        q = torch.randn(2, 4, sz(256, 20), 64, device=DEV, generator=g).to(BF16)
        k = torch.randn(2, 2, Sk, 64, device=DEV, generator=g).to(BF16)
        k[:, :, Sk // 3, 5] = math.nan
        b = torch.zeros(1, 1, 1, Sk, device=DEV) if bias else None
        o, lse, ent, _, _ = hja.hj_attention_fwd(q, k, k, b, 0.125, False, -1, 0, splits=splits)
        ok = bool(torch.isnan(lse).all() and torch.isnan(ent).all() and torch.isnan(o).all())
        RESULTS["checks"].append(dict(name=f"NaN key -> NaN rows Sk{Sk} splits={splits} "
                                      f"bias={bias}", ok=ok))
        log(f"{'PASS' if ok else 'FAIL'} NaN rows Sk={Sk} splits={splits} bias={bias}")
    z = torch.randn(64, sz(4096, 70), device=DEV, generator=g)
    z[3, 17] = math.nan
    for method in ("online", "kouter"):
        h = entropy_sweep_fwd(z, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
                              method=method)
        ok = bool(torch.isnan(h[3]).all() and torch.isfinite(h[torch.arange(64) != 3]).all())
        RESULTS["checks"].append(dict(name=f"entropy_sweep {method}: NaN logit -> NaN row",
                                      ok=ok))
        log(f"{'PASS' if ok else 'FAIL'} sweep {method} NaN row")
    q = torch.randn(1, 2, 8, 64, device=DEV).to(BF16)
    none = torch.randn(1, 1, 0, 64, device=DEV).to(BF16)
    o, lse, ent, _, _ = hja.hj_attention_fwd(q, none, none, None, 0.125, False, -1, 0)
    ok = bool((o == 0).all() and torch.isneginf(lse).all() and (ent == 0).all())
    RESULTS["checks"].append(dict(name="no keys -> out 0, lse -inf, H 0", ok=ok))
    hja.POISON = False


def time_decode():
    """Decode (Sq = 1, grouped-query KV cache): one hj_attention call (split-K + the Triton merge;
    a group's query heads packed into one block, and unpacked for comparison) beside SDPA, and
    the Triton split merge beside the PyTorch merge it replaced, on the same partials;
    isolated-call latency (host launch included) and queued time."""
    from hjplug.kernels.reference.split_merge import merge_splits as merge_torch
    from hjplug.kernels.triton.split_merge import merge_splits as merge_triton

    B, H, Hk, D, Sk = sz(4, 1), 32, 8, 128, sz(8192, 300)
    q = torch.randn(B, H, 1, D, device=DEV).to(BF16)
    k = torch.randn(B, Hk, Sk, D, device=DEV).to(BF16)
    v = torch.randn_like(k)
    scale = D ** -0.5
    hja.hj_attention_fwd(q, k, v, None, scale, False, -1, 0)  # tune + compile
    sync()
    ours = lambda: hja.hj_attention_fwd(q, k, v, None, scale, False, -1, 0)
    res = {"ours": bench(ours), "ours synced": bench(ours, synced=True)}
    hja.PACK_GQA_DECODE = False  # one head per program (the layout before packing)
    ours()
    sync()
    res["ours unpacked"], res["ours unpacked synced"] = bench(ours), bench(ours, synced=True)
    hja.PACK_GQA_DECODE = True
    try:
        base = lambda: F.scaled_dot_product_attention(q, k, v, scale=scale,
                                                      enable_gqa=True)
        base()
        res["sdpa"], res["sdpa synced"] = bench(base), bench(base, synced=True)
    except Exception as exc:  # an SDPA without enable_gqa
        baseline_unavailable(RESULTS, "decode sdpa", exc)
    S = 16
    out = torch.randn(S, B, H, 1, D, device=DEV)
    parts = torch.stack([torch.randn(S, B, H, 1, device=DEV) * 4,  # (m, log₂ l) per split
                         torch.rand(S, B, H, 1, device=DEV) * 8], dim=-1)
    ent = torch.rand(S, B, H, 1, device=DEV)
    a, b_ = merge_triton(out, parts, ent, BF16), merge_torch(out, parts, ent, BF16)
    ok = all(float((x.float() - y.float()).abs().max()) <= 2e-2 for x, y in zip(a, b_,
                                                                                  strict=True))
    RESULTS["checks"].append(dict(name="split merge triton vs torch (16 splits)", ok=ok))
    for name, fn in (("merge triton", lambda: merge_triton(out, parts, ent, BF16)),
                     ("merge torch", lambda: merge_torch(out, parts, ent, BF16))):
        res[name], res[name + " synced"] = bench(fn), bench(fn, synced=True)
    RESULTS["timings"].append(dict(op="decode", B=B, H=H, Hk=Hk, D=D, Sk=Sk, dtype="bf16",
                                   ms=res))
    ROWS.append(("decode hj_attention", res["ours synced"],
                 f"sdpa {res.get('sdpa synced', float('nan')):.3f}, unpacked "
                 f"{res['ours unpacked synced']:.3f} (synced)",
                 f"merge {res['merge triton synced']:.3f} vs torch "
                 f"{res['merge torch synced']:.3f}", "synced latencies"))
    log(f"decode: {res}")


def main() -> int:
    name = "CPU (dry run)" if DRY else torch.cuda.get_device_properties(0).name
    RESULTS["env"] = dict(device=name,
                          torch=torch.__version__, triton=triton.__version__,
                          date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    log(f"{RESULTS['env']}")
    for fn in (correctness_attention, correctness_hopf_cole, correctness_sweep,
               correctness_edges, correctness_every_config, time_attention, time_hopf_cole,
               time_sweep, time_decode):
        log(f"--- {fn.__name__}")
        section(fn)
    title = (f"{RESULTS['env']['device']}, torch {torch.__version__}, triton "
             f"{triton.__version__}")
    status = finish(RESULTS, title, "gpu_check.json")
    print(f"{'kernel':<26}{'ours ms':>9}  {'baselines ms':<44}{'ratio':<34}note")
    for name, ours, base, ratio, note in ROWS:
        print(f"{name:<26}{ours:>9.3f}  {base:<44}{ratio:<34}{note}")
    return status


if __name__ == "__main__":
    sys.exit(main())
