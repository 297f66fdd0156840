"""Copy a set of graph nodes into a standalone GraphModule (exact replay of a matched chain)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import fx

__all__ = ["extract_subgraph", "schema_args"]


def extract_subgraph(
    nodes: Sequence[fx.Node], inputs: Sequence[fx.Node], output: fx.Node | tuple[fx.Node, ...],
    root: torch.nn.Module | None = None, scale_logits: fx.Node | None = None,
) -> fx.GraphModule:
    """nodes (in graph order) → GraphModule(in_0, …, in_{n-1}) returning `output`'s value
    (a tuple of values when `output` is a tuple of nodes).

    `root` supplies the attributes of get_attr nodes (none needed when there are none).
    `scale_logits`: a softmax-input node whose value gets multiplied by an extra last input
    `ratio` = ε₀/ε, removed atoms (−∞ / finfo.min stand-ins) unchanged
    (hjplug.modules.attention_bias.scale_logits): the whole logit vector, bias included, as a
    softmax temperature. Its consumers and the output see the scaled value.
    """
    from hjplug.modules.attention_bias import scale_logits as scale_fn

    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for i, n in enumerate(inputs):
        env[n] = graph.placeholder(f"in_{i}")
    ratio = graph.placeholder("ratio") if scale_logits is not None else None
    for n in nodes:
        env[n] = graph.node_copy(n, lambda x: env[x])
        if n is scale_logits and ratio is not None:
            env[n] = graph.call_function(scale_fn, (env[n], ratio))
    graph.output(tuple(env[o] for o in output) if isinstance(output, tuple) else env[output])
    return fx.GraphModule(root if root is not None else torch.nn.Module(), graph)


def external_inputs(nodes: Sequence[fx.Node]) -> list[fx.Node]:
    """Inputs of `nodes` produced outside them, in first-use order."""
    inside = set(nodes)
    out: list[fx.Node] = []
    for n in nodes:
        for a in n.all_input_nodes:
            if a not in inside and a not in out:
                out.append(a)
    return out


def schema_args(node: fx.Node) -> dict[str, object]:
    """Positional + keyword arguments of an aten call by schema name (defaults filled in)."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return {str(i): a for i, a in enumerate(node.args)} | dict(node.kwargs)
    out: dict[str, object] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
    return out
