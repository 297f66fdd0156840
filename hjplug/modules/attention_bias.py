"""Additive attention biases under a deformed ε, in the paper's convention (paper-notes §1, §4).

A head's logits at its identified ε₀ are z₀ = s/ε₀ + b (s = q·k, b the model's mask / position
bias). Read as an LSE layer, z₀ = (W x + b′)/ε₀ with atoms (W_j, b′_j = ε₀·b_j): the bias is part
of the initial data, ε is the viscosity. Deforming ε₀ → ε keeps the atoms, so

    z = (W x + b′)/ε = s/ε + (ε₀/ε)·b = z₀·(ε₀/ε)

i.e. ε is a softmax temperature of the whole logit vector (the Hugging Face path does the same),
and the tropical limit ε → 0 is the hard max of z₀ (bias included). Removed atoms (−∞, or the
finfo.min stand-ins HF masks use) stay removed and are never rescaled.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.errors import HJPlugError

__all__ = ["is_removed", "scale_bias", "scale_logits"]


REMOVED_BELOW = -1.0e30  # the kernels' rule: a score below −10³⁰ counts as removed


def is_removed(b: Tensor) -> Tensor:
    """Atoms a mask removes: b = −∞ or b ≤ −10³⁰ as in the kernels (HF's finfo.min stand-ins,
    also after a model scales them, e.g. finfo.min/√d); fp16, whose range ends at −65504: b ≤
    half its minimum."""
    if b.is_floating_point():
        return b <= max(torch.finfo(b.dtype).min / 2, REMOVED_BELOW)
    return torch.zeros_like(b, dtype=torch.bool)


def _gain(g: float | Tensor, like: Tensor) -> float | Tensor:
    """A float, or per-head gains [H] shaped [H, 1, 1] for [..., H, Tq, Tk] tensors."""
    if isinstance(g, Tensor):
        return g.to(device=like.device, dtype=like.dtype).view(-1, 1, 1)
    return g


def scale_bias(b: Tensor, gain: float | Tensor) -> Tensor:
    """(ε₀/ε)·b for a float bias (gain a float, or one per head [H]); removed atoms unchanged,
    bool masks unchanged."""
    if b.dtype == torch.bool or (not isinstance(gain, Tensor) and gain == 1.0):
        return b
    return torch.where(is_removed(b), b, b * _gain(gain, b))


def scale_logits(z: Tensor, ratio: float | Tensor) -> Tensor:
    """z₀·ratio (ratio = ε₀/ε) for a replayed chain's softmax input; removed atoms unchanged.
    A ratio per head [H] scales z [..., n, Sq, Sk] on dim −3, tiled when n = B·H (ε_{b·H+h} =
    ratio_h)."""
    if not isinstance(ratio, Tensor):
        if ratio == 1.0:
            return z
        return torch.where(is_removed(z), z, z * ratio)
    n, h = (z.shape[-3] if z.dim() >= 3 else 0), ratio.numel()
    if not n or n % h:
        raise HJPlugError(f"{h} per-head ε values, but the replayed attention logits have shape "
                          f"{tuple(z.shape)} (heads on dim −3 expected, {h} or a multiple)")
    r = ratio.to(device=z.device, dtype=z.dtype).repeat(n // h).view(n, 1, 1)  # [n, 1, 1]
    return torch.where(is_removed(z), z, z * r)
