"""Run the ONNX rules over a graph: matches, near-misses and a count per rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch, OnnxRecognition, OnnxRule

__all__ = ["recognize"]


def recognize(index: GraphIndex, rules: Sequence[OnnxRule] | None = None) -> OnnxRecognition:
    """Apply `rules` (default: `DEFAULT_RULES`, in order) to `index`; each node joins at most one
    block. Near-misses of nodes a later rule claimed are dropped."""
    from hjplug.passes.onnx.rules import DEFAULT_RULES

    rules = DEFAULT_RULES if rules is None else tuple(rules)
    claimed: set[int] = set()
    matches: list[OnnxMatch] = []
    misses: list[NearMiss] = []
    counts: dict[str, int] = {}
    for rule in rules:
        found = rule.scan(index, claimed)
        new = [m for m in found if isinstance(m, OnnxMatch)]
        for m in new:
            claimed.update(m.nodes)
        matches += new
        misses += [m for m in found if isinstance(m, NearMiss)]
        counts[rule.name] = len(new)
    claimed_names = {index.name(i) for i in claimed}
    matches = [_with_rejections(m, index.name(m.anchor), misses) for m in matches]
    misses = [m for m in misses if m.node not in claimed_names]
    matches.sort(key=lambda m: m.anchor)
    return OnnxRecognition(tuple(_unique_paths(matches)), tuple(misses), counts)


def _with_rejections(m: OnnxMatch, anchor: str, misses: list[NearMiss]) -> OnnxMatch:
    """Why earlier rules rejected this block's anchor (e.g. a softmax that is not attention)
    goes into its notes, since the near-miss itself is dropped."""
    why = [f"not {x.rule}: {x.reason}" for x in misses if x.node == anchor and x.rule != m.rule]
    if not why:
        return m
    notes = "; ".join(filter(None, [m.spec.notes, *why]))
    return replace(m, spec=replace(m.spec, notes=notes))


def _unique_paths(matches: list[OnnxMatch]) -> list[OnnxMatch]:
    """Two blocks of one kind at one path get '#0', '#1', … suffixes (graph order), as in FX."""
    totals = Counter((m.spec.path, m.spec.kind) for m in matches if m.wrap)
    seen: Counter = Counter()
    out = []
    for m in matches:
        key = (m.spec.path, m.spec.kind)
        if m.wrap and totals[key] > 1:
            m = replace(m, spec=replace(m.spec, path=f"{m.spec.path}#{seen[key]}"))
            seen[key] += 1
        out.append(m)
    return out
