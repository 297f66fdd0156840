"""Where the attribution landscape x ↦ H(π(x; ε)) is explored: a 1-D path or a 2-D slice.

    Path1D:  x(s) = x0 + s·(x1 − x0),          s ∈ [0, 1]
    Slice2D: x(a, b) = origin + a·u + b·v,     (a, b) ∈ [a0, a1] × [b0, b1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError

__all__ = ["Domain", "Path1D", "Slice2D"]


def _vec(name: str, value: Any, where: str) -> tuple[float, ...]:
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise InvalidArgumentError(name, "a non-empty vector of finite numbers", value, where=where)
    return tuple(float(v) for v in t)


@dataclass(frozen=True)
class Path1D:
    """The segment from x0 to x1, sampled at n_grid points to bracket critical points."""

    x0: tuple[float, ...]
    x1: tuple[float, ...]
    n_grid: int = 2001

    def __post_init__(self) -> None:
        where = "hjplug.landscape.Path1D"
        object.__setattr__(self, "x0", _vec("x0", self.x0, where))
        object.__setattr__(self, "x1", _vec("x1", self.x1, where))
        if len(self.x0) != len(self.x1) or self.x0 == self.x1:
            raise InvalidArgumentError("x1", f"a point ≠ x0 with the same dimension {len(self.x0)}",
                                       self.x1, where=where)
        if self.n_grid < 3:
            raise InvalidArgumentError("n_grid", "an integer ≥ 3", self.n_grid, where=where)

    @property
    def dim(self) -> int:
        return len(self.x0)

    def origin_and_directions(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """origin [d], directions [k=1, d]."""
        x0 = torch.tensor(self.x0, dtype=dtype)
        return x0, (torch.tensor(self.x1, dtype=dtype) - x0)[None]

    def bounds(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, 1.0),)


@dataclass(frozen=True)
class Slice2D:
    """The plane origin + a·u + b·v over extent = (a_min, a_max, b_min, b_max)."""

    origin: tuple[float, ...]
    u: tuple[float, ...]
    v: tuple[float, ...]
    extent: tuple[float, float, float, float]
    n_grid: int = 61

    def __post_init__(self) -> None:
        where = "hjplug.landscape.Slice2D"
        for name in ("origin", "u", "v"):
            object.__setattr__(self, name, _vec(name, getattr(self, name), where))
        ext = _vec("extent", self.extent, where)
        if len(ext) != 4 or ext[0] >= ext[1] or ext[2] >= ext[3]:
            raise InvalidArgumentError("extent", "(a_min, a_max, b_min, b_max) with min < max",
                                       self.extent, where=where)
        object.__setattr__(self, "extent", ext)
        if not len(self.origin) == len(self.u) == len(self.v):
            raise InvalidArgumentError("u", f"vectors of dimension {len(self.origin)}", self.u,
                                       where=where)
        uu, vv = torch.tensor(self.u), torch.tensor(self.v)
        if torch.linalg.matrix_rank(torch.stack([uu, vv])) < 2:
            raise InvalidArgumentError("v", "a direction independent of u", self.v, where=where)
        if self.n_grid < 3:
            raise InvalidArgumentError("n_grid", "an integer ≥ 3", self.n_grid, where=where)

    @property
    def dim(self) -> int:
        return len(self.origin)

    def origin_and_directions(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """origin [d], directions [k=2, d]."""
        return torch.tensor(self.origin, dtype=dtype), torch.tensor([self.u, self.v], dtype=dtype)

    def bounds(self) -> tuple[tuple[float, float], ...]:
        a0, a1, b0, b1 = self.extent
        return ((a0, a1), (b0, b1))


Domain = Path1D | Slice2D
