"""`hjplug`-domain nodes whose model-local function is missing.

Every `hjplug` node hjplug writes calls a function stored in the same file (its body = the block's
original ops), so ONNX Runtime can run it. A file whose functions were stripped, or a hand-edited
one, holds calls nothing defines: ONNX Runtime refuses it ("hjplug:HJ…Step(-1) is not a
registered function/op") and onnx.checker does not notice (it checks no op of a custom domain).
`inspect_onnx`, `rewrite`, the ONNX Runtime session and `add_stats` all refuse such a file with
the one message `missing_function_message` writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import onnx

from hjplug.passes.onnx.wrap import DOMAIN

__all__ = ["MissingFunction", "missing_function_message", "missing_functions"]


@dataclass(frozen=True)
class MissingFunction:
    """An `hjplug` node (`node` name, `op`, `overload`) calling a function the model lacks;
    `where` says where it sits ('' at top level, else "inside the body 'then_branch' of If
    'gate'" or "inside function hjplug.X")."""

    node: str
    op: str
    overload: str
    where: str = ""


def _scan(nodes: Iterable[onnx.NodeProto], defined: set[tuple[str, str]], where: str
          ) -> list[MissingFunction]:
    out: list[MissingFunction] = []
    for k, n in enumerate(nodes):
        if n.domain == DOMAIN and (n.op_type, n.overload) not in defined:
            out.append(MissingFunction(n.name or f"{n.op_type}#{k}", n.op_type, n.overload,
                                       where))
        for a in n.attribute:
            graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for j, g in enumerate(graphs):
                attr = a.name if a.type == onnx.AttributeProto.GRAPH else f"{a.name}[{j}]"
                here = f"inside the body '{attr}' of {n.op_type} '{n.name or n.op_type}'"
                out += _scan(g.node, defined, f"{where}, {here}" if where else here)
    return out


def missing_functions(model: onnx.ModelProto) -> list[MissingFunction]:
    """The `hjplug` nodes of `model` (top level, subgraph bodies, function bodies) whose
    function (name, overload) the model does not define."""
    defined = {(f.name, f.overload) for f in model.functions if f.domain == DOMAIN}
    out = _scan(model.graph.node, defined, "")
    for f in model.functions:
        out += _scan(f.node, defined, f"inside function {f.domain}.{f.name}")
    return out


def missing_function_message(model: onnx.ModelProto, source: str | os.PathLike) -> str | None:
    """What is wrong with `model` (read from `source`) and what to do when an `hjplug` node
    calls a function it does not define; None when every call has its function."""
    missing = missing_functions(model)
    if not missing:
        return None
    m = missing[0]
    overload = f", overload '{m.overload}'" if m.overload else ""
    where = f" {m.where}" if m.where else ""
    more = ""
    if len(missing) > 1:
        names = ", ".join(f"'{x.node}' ({x.op})" for x in missing[1:4])
        more = f"; {len(missing) - 1} more such node(s): {names}{' …' if len(missing) > 4 else ''}"
    have = sorted(f"{f.name}" + (f" (overload '{f.overload}')" if f.overload else "")
                  for f in model.functions if f.domain == DOMAIN)
    found = (f"it defines {len(have)} hjplug function(s): {', '.join(have)}" if have
             else "it defines no hjplug function")
    return (f"{source}: node '{m.node}' (op {DOMAIN}.{m.op}{overload}){where} calls the "
            f"model-local function {DOMAIN}.{m.op}, which the model does not define ({found}"
            f"{more}). Expected every hjplug-domain node to call a function stored in the file "
            "(hjplug writes the block's original ops there, so that ONNX Runtime can run it); "
            "the functions were stripped (e.g. by a tool that drops model.functions) or the file "
            "was edited by hand. Rewrite the original model again (hjplug.passes.onnx.rewrite, "
            "or `hjplug export-onnx`), or restore its functions.")
