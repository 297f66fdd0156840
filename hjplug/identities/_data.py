"""Random fp64 test data for the identity checks (seeded generators, no global RNG state)."""

from __future__ import annotations

import torch
from torch import Tensor

F64 = torch.float64


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=F64) * scale


def uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen, dtype=F64)


def spd(gen: torch.Generator, d: int) -> Tensor:
    """A random symmetric positive definite d×d metric, eigenvalues in about [0.5, 2]."""
    q, _ = torch.linalg.qr(randn(gen, d, d))
    lam = uniform(gen, 0.5, 2.0, d)
    return (q * lam) @ q.T


def rel_err(a: Tensor, b: Tensor) -> float:
    """max|a − b| / max(1, max|b|): absolute near 0, relative for large values."""
    scale = max(1.0, float(b.abs().max()))
    return float((a - b).abs().max()) / scale
