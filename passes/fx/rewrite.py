"""Rewrite matched blocks into HJStep modules inside the graph module (in place)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import fx, nn

from hjplug.passes.fx.graph import op_name
from hjplug.passes.fx.match import Match

__all__ = ["rewrite"]


def rewrite(graph_module: fx.GraphModule, matches: Sequence[Match]) -> dict[str, nn.Module]:
    """Insert one `hj_<kind>_<i>` submodule per rewritable match; returns {submodule name: step}.

    Each Rewrite's node is replaced by a call of its block's step; nodes left unused disappear.
    """
    graph = graph_module.graph
    steps: dict[str, nn.Module] = {}
    done: dict[fx.Node, fx.Node] = {}  # replaced node -> its step call

    def fresh(a: object) -> object:
        return fx.node.map_arg(a, lambda n: done.get(n, n))

    for i, m in enumerate(matches):
        if not m.rewrites or m.make_step is None:
            continue
        name = f"hj_{m.spec.kind}_{i}"
        while hasattr(graph_module, name):
            name += "_"
        step = m.make_step(m.spec)
        graph_module.add_submodule(name, step)
        steps[name] = step
        for rw in m.rewrites:
            node = done.get(rw.node, rw.node)
            with graph.inserting_before(node):
                new = graph.call_module(name, fresh(rw.args), fresh(rw.kwargs))
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            done[rw.node] = new
    _drop_dead(graph)
    graph.lint()
    graph_module.recompile()
    return steps


# Seeded-random ops count as impure for torch's DCE; unused, in an eval graph, they are dead.
_SAFE_WHEN_UNUSED = {"scaled_dot_product_attention", "dropout", "native_dropout",
                     "feature_dropout", "alpha_dropout"}


def _impure(node: fx.Node) -> bool:
    return op_name(node) not in _SAFE_WHEN_UNUSED and node.is_impure()


def _drop_dead(graph: fx.Graph) -> None:
    """Remove metadata asserts that only keep replaced nodes alive, then dead code."""
    for _ in range(3):
        graph.eliminate_dead_code(is_impure_node=_impure)
        for node in reversed(list(graph.nodes)):
            if op_name(node) == "_assert_tensor_metadata" and node.args:
                src = node.args[0]
                if isinstance(src, fx.Node) and all(
                    op_name(u) == "_assert_tensor_metadata" for u in src.users
                ):
                    graph.erase_node(node)
    graph.eliminate_dead_code(is_impure_node=_impure)
