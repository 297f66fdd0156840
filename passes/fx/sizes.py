"""Sizes of graph values as ints or sympy expressions, so that a rule can reason about a
dynamic capture (torch.export Dim.AUTO: batch / sequence sizes are SymInts) as it does about a
static one: `sym_shape(q) = (2*s0, s1, 8)` for a [B·H, S, d] query with H = 2, d = 8.

`graph.shape` gives the same sizes as ints or strings (for records); these are for arithmetic.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import sympy  # type: ignore[import-untyped]
import torch
from torch import fx

__all__ = ["divides", "same_size", "sym_shape"]

Size: TypeAlias = Any  # an int, or a sympy.Expr over the capture's size symbols


def sym_shape(node: object) -> tuple[Size, ...] | None:
    """Shape of a node's value: an int per static size, a sympy expression per dynamic one
    (the SymInt's expression over the capture's size symbols); None if unknown."""
    if not isinstance(node, fx.Node):
        return None
    val = node.meta.get("val", node.meta.get("tensor_meta"))
    s = getattr(val, "shape", None)
    if s is None:
        return None
    return tuple(_size(d) for d in s)


def _size(d: Any) -> Size:
    if isinstance(d, torch.SymInt):
        expr = d.node.expr
        return int(expr) if expr.is_Integer else expr  # a SymInt export specialised
    return int(d)


def same_size(a: Size, b: Size) -> bool:
    """a == b for every value of the size symbols (ints compared as ints)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return bool(sympy.simplify(sympy.expand(a - b)) == 0)


def divides(h: int, n: Size) -> bool:
    """h divides n for every value of the size symbols (e.g. 2 | 2·s0, not 2 | s0)."""
    if h <= 0:
        return False
    if isinstance(n, int):
        return n % h == 0
    return bool(sympy.Mod(n, h) == 0)
