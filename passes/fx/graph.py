"""Small read-only helpers over an exported FX graph (module paths, shapes, data flow)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import fx

__all__ = [
    "NodeIndex",
    "is_param",
    "module_class",
    "module_path",
    "op_name",
    "shape",
    "tensor_inputs",
]

_PASSTHROUGH = {
    "to", "_to_copy", "contiguous", "clone", "type_as", "detach", "alias",
    "_assert_tensor_metadata", "lift_fresh_copy",
}


_ALIASES = {"truediv": "div", "iadd": "add_", "imul": "mul_"}


def op_name(node: fx.Node) -> str:
    """'softmax' for aten.softmax.int, F.softmax or x.softmax(); 'getitem' for operator.getitem;
    '' for placeholders, attributes, modules and outputs."""
    if node.op == "call_method":
        return _ALIASES.get(str(node.target), str(node.target))
    if node.op != "call_function":
        return ""
    target = node.target
    packet = getattr(target, "_opname", None) or getattr(target, "__name__", str(target))
    name = str(packet).split(".")[0]
    return _ALIASES.get(name, name)


def module_path(node: fx.Node) -> str:
    """Innermost nn.Module path of the node ("" = the root model)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return str(list(stack.values())[-1][0])


def module_class(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    cls = list(stack.values())[-1][1]
    name = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
    return name.rsplit(".", 1)[-1]


def shape(node: object) -> tuple[int | str, ...] | None:
    """Shape of a node's value (export's fake tensors): ints, or the symbol's name ("s0") for a
    dynamic size; None if unknown or not a tensor."""
    if not isinstance(node, fx.Node):
        return None
    val = node.meta.get("val", node.meta.get("tensor_meta"))
    s = getattr(val, "shape", None)
    if s is None:
        return None
    return tuple(int(d) if isinstance(d, int) else str(d) for d in s)


def dtype(node: object) -> torch.dtype | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return getattr(val, "dtype", None)


def is_param(node: object, root: torch.nn.Module | None = None) -> bool:
    """A parameter/buffer input: get_attr (unlifted module) or a lifted 'p_'/'b_' placeholder."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "get_attr":
        return True
    return node.op == "placeholder" and node.name.startswith(("p_", "b_"))


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.all_input_nodes if shape(a) is not None]


def skip_passthrough(node: object) -> object:
    """Follow dtype casts / copies backwards to the producing node."""
    while isinstance(node, fx.Node) and op_name(node) in _PASSTHROUGH and node.args:
        node = node.args[0]
    return node


class NodeIndex:
    """Topological positions and per-module regions of one graph, computed once."""

    def __init__(self, graph: fx.Graph) -> None:
        self.graph = graph
        self.order: dict[fx.Node, int] = {n: i for i, n in enumerate(graph.nodes)}
        self.regions: dict[str, list[fx.Node]] = {}
        self.classes: dict[str, str] = {}
        for n in graph.nodes:
            if n.op == "call_function":
                path = module_path(n)
                self.regions.setdefault(path, []).append(n)
                self.classes.setdefault(path, module_class(n))

    def calls(self, *names: str) -> Iterator[fx.Node]:
        wanted = set(names)
        return (n for n in self.graph.nodes if op_name(n) in wanted)

    def depends_on(self, node: fx.Node, source: fx.Node, limit: int = 20_000) -> bool:
        """True when `source` is a (transitive) input of `node`. Walks only nodes after `source`."""
        start = self.order.get(source, -1)
        seen: set[fx.Node] = set()
        todo = [node]
        while todo and len(seen) < limit:
            n = todo.pop()
            if n is source:
                return True
            if n in seen or self.order.get(n, -1) <= start:
                continue
            seen.add(n)
            todo.extend(n.all_input_nodes)
        return False

    def descendants(self, roots: Iterable[fx.Node], within: set[fx.Node]) -> set[fx.Node]:
        out: set[fx.Node] = set()
        todo = list(roots)
        while todo:
            n = todo.pop()
            for u in n.users:
                if u in within and u not in out:
                    out.add(u)
                    todo.append(u)
        return out
