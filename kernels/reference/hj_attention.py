"""Reference twin of the fused HJ attention kernel (pure PyTorch, blocked over rows, chunked over
keys with online rescaling, base 2 like the kernel).

    s_ij = scale · q_i·k_j + bias_ij      (−inf, causal or out-of-window = removed key)
    π_ij = softmax_j(s_ij),  out_i = Σ_j π_ij v_j,
    lse_i = log Σ_j e^{s_ij},  H_i = lse_i − E_π[s_i]

Rows (one batch element, a range of kv-heads with their g query heads, a range of queries) are
processed in blocks; each block walks its visible key range in chunks (_online: t = log₂e·s,
flash-style merge), so at most BLOCK_SCORES (or g·chunk) scores exist at once — never Sq×Sk for
large Sk — and a block plus its powers stays in a core's L2 cache. Key chunks that no query of a
block can see (causal / window band) are skipped, as the kernel's loop bounds do. Causal masking
is aligned bottom-right (query i sees key j ≤ i + Sk − Sq, as SDPA/flash with a KV cache);
`window` = w keeps keys with i + Sk − Sq − w < j (and, when not causal, j < i + Sk − Sq + w).
Computes in fp32 (fp64 stays); differentiable (the backward recomputes through this twin).
`hj_attention_parts` also returns each row's lse_parts (m, log₂ l) for the fused backward, whose
twin recomputes the base-2 scores with the same `chunk_scores` (bitwise the same t).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug.kernels._checks import check_attention, stats_dtype
from hjplug.kernels.records import HJAttentionOutput
from hjplug.kernels.reference import _online

__all__ = ["as_additive", "chunk_scores", "hj_attention", "hj_attention_parts", "key_range",
           "visible_mask", "zero_outside_band"]

BLOCK_SCORES = 1 << 18  # scores per block (fp32: 1 MiB; with its powers ≈ a 2 MiB L2)
KEY_CHUNK = 512  # default keys per chunk


def as_additive(bias: Tensor | None, dtype: torch.dtype, factor: float = 1.0) -> Tensor | None:
    """A bool mask (True = keep) becomes 0 / −inf; a float bias becomes factor·bias in `dtype`."""
    if bias is None:
        return None
    if bias.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=bias.device)
        return torch.where(bias, zero, torch.full_like(zero, float("-inf")))
    return bias.to(dtype) * factor if factor != 1.0 else bias.to(dtype)


def visible_mask(sq: int, j0: int, j1: int, sk: int, causal: bool, window: int,
                 device: torch.device, i0: int = 0, i1: int | None = None) -> Tensor | None:
    """[i1−i0, j1−j0] bool: key j visible from query i (queries i0…i1 of sq; None when no
    causal / window rule applies)."""
    if not causal and window < 0:
        return None
    i = torch.arange(i0, sq if i1 is None else i1, device=device).unsqueeze(1) + (sk - sq)
    j = torch.arange(j0, j1, device=device).unsqueeze(0)  # [1, C]
    ok = torch.ones(i.shape[0], j1 - j0, dtype=torch.bool, device=device)  # [R, C]
    if causal:
        ok &= j <= i
    if window > 0:
        ok &= j > i - window
        if not causal:
            ok &= j < i + window
    return ok


def key_range(i0: int, i1: int, sq: int, sk: int, causal: bool, window: int) -> tuple[int, int]:
    """Keys [lo, hi) that some query of i0…i1−1 can see (causal / window band), within [0, sk)."""
    lo, hi, off = 0, sk, sk - sq
    if causal:
        hi = min(hi, i1 - 1 + off + 1)
    if window > 0:
        lo = max(lo, i0 + off - window + 1)
        if not causal:
            hi = min(hi, i1 - 1 + off + window)
    return max(lo, 0), max(hi, 0)


def zero_outside_band(x: Tensor, d: int, causal: bool, window: int) -> Tensor:
    """x [..., R, C] with the entries outside the causal / window band set to 0, in place: row r
    sees column c iff c ≤ r + d (causal), c > r + d − window, c < r + d + window (not causal),
    where d = i0 + Sk − Sq − j0 for queries i0 + r and keys j0 + c. Zeroing, then adding −inf,
    removes a key even if its score is NaN (as the kernel's `where` does)."""
    if causal:
        x.tril_(d)
    if window > 0:
        x.triu_(d - window + 1)
        if not causal:
            x.tril_(d + window - 1)
    return x


def as_4d(add: Tensor | None) -> Tensor | None:
    """An additive bias with its broadcast dims kept (size 1), as [B | 1, H | 1, Sq | 1, Sk | 1]."""
    if add is None:
        return None
    while add.dim() < 4:
        add = add.unsqueeze(0)
    return add


def bias_block(add4: Tensor, b: int, h0: int, h1: int, g: int, i0: int, i1: int, j0: int,
               j1: int) -> Tensor:
    """The block [nh, g, nq, C] of a 4-D additive bias (batch b, kv-heads h0…h1 with their g
    query heads each, queries i0…i1, keys j0…j1), sliced on the bias's own dims and only then
    broadcast: under autograd each chunk's slice backward then allocates the bias's own size
    (e.g. Hopf–Cole's [1, 1, 1, N]), not the broadcast [B, H, Sq, Sk]."""
    Bb, Hb, Sqb, Skb = add4.shape
    x = add4[b if Bb > 1 else 0]  # [Hb, Sqb, Skb]
    x = x[h0 * g:h1 * g] if Hb > 1 else x
    x = x[:, i0:i1] if Sqb > 1 else x
    x = x[:, :, j0:j1] if Skb > 1 else x
    return x.expand((h1 - h0) * g, i1 - i0, j1 - j0).unflatten(0, (h1 - h0, g))


def _splits(n: int, most: int) -> list[tuple[int, int]]:
    """[0, n) in ceil(n / most) ranges of at most `most`."""
    most = max(1, most)
    return [(i, min(n, i + most)) for i in range(0, n, most)]


def chunk_scores(qb: Tensor, kb: Tensor, alpha: float, add: Tensor | None, nq: int,
                 band: int | None, causal: bool, window: int, out: Tensor | None = None
                 ) -> Tensor:
    """Base-2 scores t = alpha·q·kᵀ + add [nh, g·nq, C] of a block of queries qb [nh, g·nq, D]
    (g heads × nq queries) against a chunk of keys kb [nh, C, D]; add [nh, g, nq, C] is
    log₂e·bias or None; band = i0 + Sk − Sq − j0 when a causal / window rule applies, else None
    (keys outside it get −inf). The forward and the backward twin both call this, so they see
    bitwise the same t: the backward's t − m is exact wherever the forward's was."""
    nh, C = kb.shape[0], kb.shape[1]
    zero = torch.zeros((), dtype=qb.dtype, device=qb.device)
    t = torch.baddbmm(zero, qb, kb.mT, beta=0.0, alpha=alpha, out=out)  # [nh, g·nq, C]
    t4 = t.view(nh, -1, nq, C)  # [nh, g, nq, C]
    if add is not None:
        t4.add_(add)
    if band is not None:
        keep = zero_outside_band(torch.ones(nq, C, dtype=qb.dtype, device=qb.device),
                                 band, causal, window)  # [nq, C] 1 / 0
        if not bool(keep.all()):  # the chunk crosses the band's edge
            zero_outside_band(t4, band, causal, window).add_(keep.log())  # 0 → −inf
    return t


def hj_attention(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None, causal: bool = False,
    bias: Tensor | None = None, window: int | None = None, topk: int = 0,
    chunk: int | None = None,
) -> HJAttentionOutput:
    """Attention output with per-row lse and entropy (and top-k weights), chunked over keys."""
    return hj_attention_parts(q, k, v, scale=scale, causal=causal, bias=bias, window=window,
                              topk=topk, chunk=chunk)[0]


def hj_attention_parts(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None, causal: bool = False,
    bias: Tensor | None = None, window: int | None = None, topk: int = 0,
    chunk: int | None = None,
) -> tuple[HJAttentionOutput, Tensor]:
    """`hj_attention` and each row's lse_parts [B, H, Sq, 2] = (m, log₂ l), base 2."""
    scale_f, win = check_attention(q, k, v, scale, bias, window, topk,
                                   where="hjplug.kernels.reference.hj_attention")
    B, H, Sq, D = q.shape
    Hk, Sk, Dv = k.shape[1], k.shape[2], v.shape[-1]
    g = H // Hk
    ct = stats_dtype(q.dtype)
    dev = q.device
    alpha = scale_f * _online.LOG2E  # t = log₂e·s = alpha·q·k + log₂e·bias
    qg = q.view(B, Hk, g, Sq, D)  # [B, Hk, g, Sq, D] (a view: no copy of q)
    add = as_4d(as_additive(bias, ct, _online.LOG2E))  # base-2 additive bias, its own shape
    c = max(1, min(Sk, chunk or KEY_CHUNK))
    rows = max(1, BLOCK_SCORES // (g * c))  # queries (of one kv-head) per block
    sq1 = max(Sq, 1)
    kk = min(topk, Sk)
    # raw online state of every row [B, Hk, g, Sq, …]; finish runs once at the end
    m = torch.empty(B, Hk, g, Sq, 1, dtype=ct, device=dev)
    l = torch.empty(B, Hk, g, Sq, dtype=ct, device=dev)  # noqa: E741
    a = torch.empty_like(l)
    acc = torch.empty(B, Hk, g, Sq, Dv, dtype=ct, device=dev)
    topv = torch.empty(B, Hk, g, Sq, kk, dtype=ct, device=dev)
    topi = torch.empty(B, Hk, g, Sq, kk, dtype=torch.long, device=dev)
    heads = _splits(Hk, rows // sq1) if rows >= sq1 else [(h, h + 1) for h in range(Hk)]
    queries = [(0, Sq)] if rows >= sq1 else _splits(Sq, rows)
    grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (q, k, v, bias))
    scores = powers = None  # without autograd: one buffer each, reused by every block (no
    if not grad:  # allocation, so no page faults, per block)
        most = max(h1 - h0 for h0, h1 in heads) * g * max(i1 - i0 for i0, i1 in queries) * c
        scores, powers = (torch.empty(most, dtype=ct, device=dev) for _ in range(2))
    for b in range(B):
        for h0, h1 in heads:
            for i0, i1 in queries:
                nh, nq = h1 - h0, i1 - i0
                qb = qg[b, h0:h1, :, i0:i1].to(ct).reshape(nh, g * nq, D)  # [nh, g·nq, D]
                lo, hi = key_range(i0, i1, Sq, Sk, causal, win)
                st: _online.OnlineStats | None = None
                for j0 in range(lo, hi, c):
                    j1 = min(hi, j0 + c)
                    kb = k[b, h0:h1, j0:j1].to(ct)  # [nh, C, D]
                    shape = (nh, g * nq, j1 - j0)
                    n = math.prod(shape)
                    band = i0 + Sk - Sq - j0 if causal or win > 0 else None
                    t = chunk_scores(qb, kb, alpha, None if add is None else
                                     bias_block(add, b, h0, h1, g, i0, i1, j0, j1), nq, band,
                                     causal, win,
                                     None if scores is None else scores[:n].view(shape))
                    st = _online.merge_chunk(st, t, v[b, h0:h1, j0:j1].to(ct), kk, j0,
                                             None if powers is None else powers[:n].view(shape))
                if st is None:  # no visible key for any query of the block
                    st = _online.empty((nh, g * nq), ct, dev, Dv, kk)
                blk = (b, slice(h0, h1), slice(None), slice(i0, i1))
                m[blk] = st.m.view(nh, g, nq, 1)
                l[blk] = st.l.view(nh, g, nq)
                a[blk] = st.a.view(nh, g, nq)
                acc[blk] = st.acc.view(nh, g, nq, Dv)  # type: ignore[union-attr]
                if kk:
                    assert st.topv is not None and st.topi is not None
                    w = st.topv.shape[-1]  # < kk when the block saw fewer keys
                    topv[blk] = torch.nn.functional.pad(st.topv, (0, kk - w), value=-math.inf
                                                        ).view(nh, g, nq, kk)
                    topi[blk] = torch.nn.functional.pad(st.topi, (0, kk - w), value=-1
                                                        ).view(nh, g, nq, kk)
    st_all = _online.OnlineStats(m, l, a, acc)
    out, lse, ent = _online.finish(st_all)
    assert out is not None
    parts = _online.lse_parts(st_all)  # [B, Hk, g, Sq, 2]
    tw = ti = None
    if topk:
        tw, ti = _online.topk_result(topv, topi, parts, topk)  # [B, Hk, g, Sq, topk]
        tw, ti = tw.reshape(B, H, Sq, topk), ti.reshape(B, H, Sq, topk)
    rec = HJAttentionOutput(
        out.reshape(B, H, Sq, Dv).to(q.dtype),
        lse.reshape(B, H, Sq),
        ent.reshape(B, H, Sq),
        tw,
        ti,
    )
    return rec, parts.reshape(B, H, Sq, 2)
