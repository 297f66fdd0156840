"""Blocks whose output reaches nothing: an HJ step in their place would never run.

A match whose rewritten nodes feed neither the graph's output nor a side effect (e.g. an
nn.MultiheadAttention whose attention output the model discards, returning only its weights) is
kept in the report, without a step, with a note and a near-miss saying why nothing is recorded
for it. The graph is left as captured, so the outputs are the model's.
"""

from __future__ import annotations

from dataclasses import replace

from torch import fx

from hjplug.passes.fx.graph import op_name
from hjplug.passes.fx.match import Match, NoMatch

__all__ = ["live_nodes", "unused_outputs"]

# impure nodes that only check values (asserts, guards): they do not make their inputs "used"
_CHECKS = ("_assert", "assert", "sym_constrain_range")
_SOFTMAX = {"softmax", "_softmax", "_safe_softmax"}


def live_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes the graph's output or a side effect (an impure node other than a check) uses."""
    todo = [n for n in graph.nodes if n.op == "output" or (
        n.op == "call_function" and n.is_impure() and not op_name(n).startswith(_CHECKS))]
    live: set[fx.Node] = set()
    while todo:
        n = todo.pop()
        if n not in live:
            live.add(n)
            todo.extend(n.all_input_nodes)
    return live


def _reason(m: Match, live: set[fx.Node]) -> str:
    weights = [n for n in m.claims if n in live and op_name(n) in _SOFTMAX]
    only = (" — only its attention weights (the softmax) do, e.g. nn.MultiheadAttention's "
            "second output with the first discarded") if weights else ""
    out = ", ".join(sorted({f"aten.{op_name(rw.node)}" for rw in m.rewrites}))
    return (f"{m.spec.kind} block {m.spec.path!r} recognised, but its output ({out}) reaches "
            f"none of the model's outputs{only}: an HJ step there never runs, so nothing is "
            "recorded for it (statistics; ε changes have no effect); left as captured")


def unused_outputs(graph: fx.Graph, matches: list[Match]) -> tuple[list[Match], list[NoMatch]]:
    """(matches, near-misses): each match whose rewritten nodes are all dead loses its rewrites
    (no step is built) and gains a note; a sticky near-miss names it and the reason."""
    if not any(m.rewrites for m in matches):
        return matches, []
    live = live_nodes(graph)
    out: list[Match] = []
    misses: list[NoMatch] = []
    for m in matches:
        if m.rewrites and not any(rw.node in live for rw in m.rewrites):
            reason = _reason(m, live)
            notes = "; ".join(x for x in (m.spec.notes, "never runs: output unused") if x)
            m = replace(m, spec=replace(m.spec, notes=notes), rewrites=(), make_step=None)
            misses.append(NoMatch(m.rule, m.anchor.name, m.spec.path, reason, sticky=True))
        out.append(m)
    return out, misses
