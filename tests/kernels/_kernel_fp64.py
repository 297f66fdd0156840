"""Independent fp64 evaluations built from hjplug.math (materialised softmax): the ground truth
the reference twins are tested against."""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math import entropy, gibbs, lse


def visible(sq: int, sk: int, causal: bool, window: int | None) -> Tensor:
    i = torch.arange(sq)[:, None] + (sk - sq)
    j = torch.arange(sk)[None, :]
    ok = torch.ones(sq, sk, dtype=torch.bool)
    if causal:
        ok &= j <= i
    if window:
        ok &= j > i - window
        if not causal:
            ok &= j < i + window
    return ok


def attention_fp64(q, k, v, *, scale=None, causal=False, bias=None, window=None, topk=0):
    """(out, lse, entropy, topk weights, topk indices) by materialising softmax in fp64."""
    _, H, Sq, D = q.shape
    g = H // k.shape[1]
    kf = k.double().repeat_interleave(g, 1)
    vf = v.double().repeat_interleave(g, 1)
    sc = D ** -0.5 if scale is None else scale
    s = (q.double() @ kf.transpose(-1, -2)) * sc  # [B, H, Sq, Sk]
    if bias is not None:
        if bias.dtype == torch.bool:
            bias = torch.zeros(bias.shape, dtype=torch.float64).masked_fill(~bias, float("-inf"))
        s = s + bias.double()
    s = s.masked_fill(~visible(Sq, k.shape[2], causal, window), float("-inf"))
    out = gibbs(s) @ vf
    res = [out, lse(s), entropy(s)]
    if topk:
        w, i = gibbs(s).topk(topk, dim=-1)
        res += [w, torch.where(w > 0, i, -1)]  # convention: index −1 for a removed key
    return res
