"""Run the rules over a captured graph: matches, near-misses and a count per rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import NodeIndex
from hjplug.passes.fx.liveness import unused_outputs
from hjplug.passes.fx.match import Match, NoMatch, Rule

__all__ = ["Recognition", "recognize"]


@dataclass(frozen=True)
class Recognition:
    """What the rules found, in graph order; `counts[rule]` = number of matches."""

    matches: tuple[Match, ...]
    near_misses: tuple[NoMatch, ...]
    counts: dict[str, int]


def recognize(
    graph_module: fx.GraphModule, rules: Sequence[Rule] | None = None, *, config: Any = None
) -> Recognition:
    from hjplug.passes.fx.rules import DEFAULT_RULES

    rules = DEFAULT_RULES if rules is None else tuple(rules)
    ctx = RuleContext(graph_module, NodeIndex(graph_module.graph), config)
    matches: list[Match] = []
    misses: list[NoMatch] = []
    counts: dict[str, int] = {}
    for rule in rules:
        found = rule.scan(ctx)
        new = [m for m in found if isinstance(m, Match)]
        for m in new:
            ctx.claimed.update(m.claims)
        matches += new
        misses += [m for m in found if isinstance(m, NoMatch)]
        counts[rule.name] = len(new)
    claimed_names = {n.name for n in ctx.claimed}
    misses = [m for m in misses if m.sticky or m.node not in claimed_names]
    matches.sort(key=lambda m: ctx.index.order.get(m.anchor, 0))
    named, unused = unused_outputs(graph_module.graph, _unique_paths(matches))
    return Recognition(tuple(named), (*misses, *unused), counts)


def _unique_paths(matches: list[Match]) -> list[Match]:
    """Blocks sharing a module path get suffixes: '+attn' / '+mlp' for residuals around distinct
    children ("h.0+attn"), otherwise '#0', '#1', … in graph order."""
    totals = Counter(m.spec.path for m in matches)
    named = [_residual_name(m) if totals[m.spec.path] > 1 else m.spec.path for m in matches]
    clash = Counter(named)
    seen: Counter = Counter()
    out = []
    for m, name in zip(matches, named, strict=True):
        if clash[name] > 1:
            index = seen[name]
            seen[name] += 1
            name = f"{name}#{index}"
        if name != m.spec.path:
            m = replace(m, spec=replace(m.spec, path=name))
        out.append(m)
    return out


def _residual_name(m: Match) -> str:
    path = m.spec.path
    f = str(m.spec.hamiltonian.params.get("F", "")) if m.spec.kind == "residual" else ""
    prefix = "" if path == "(root)" else f"{path}."
    if f and f.startswith(prefix) and f != path:
        return f"{path}+{f[len(prefix):]}"
    return path
