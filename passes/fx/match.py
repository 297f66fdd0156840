"""What a rule returns: a `Match` (one block, and how to rewrite it) or a `NoMatch` (why not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import fx

from hjplug.spec import HJSpec

__all__ = ["Match", "NoMatch", "Rewrite", "Rule"]


@dataclass(frozen=True)
class Rewrite:
    """Replace `node`'s value by `step(*args, **kwargs)`; nodes left without users are removed.

    All rewrites of one Match (e.g. every gate of an unrolled cell) call the same HJStep module,
    built once by the Match's `make_step(spec)`.
    """

    node: fx.Node
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """One identified block: its record, the graph nodes it claims, and its rewrites."""

    rule: str
    spec: HJSpec
    anchor: fx.Node
    claims: frozenset[fx.Node]
    rewrites: tuple[Rewrite, ...] = ()
    make_step: Callable[[HJSpec], Any] | None = None


@dataclass(frozen=True)
class NoMatch:
    """A near-miss: a candidate `node` a rule looked at and rejected, with the `reason`."""

    rule: str
    node: str
    path: str
    reason: str
    sticky: bool = False  # kept even when a later rule claims the node (an attention-like chain)

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "node": self.node, "path": self.path, "reason": self.reason}


class Rule(Protocol):
    """One rule: `name`, and `scan(ctx)` yielding Match / NoMatch records."""

    name: str

    def scan(self, ctx: Any) -> list[Match | NoMatch]: ...
