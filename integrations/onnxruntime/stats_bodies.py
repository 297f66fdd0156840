"""Attention calls inside If / Loop / Scan bodies and the statistics outputs (`add_stats`).

A value computed inside a body leaves it only through the control node's own outputs (once per
iteration for Loop / Scan, from one branch only for If), so statistics of such a block cannot
become graph outputs without changing the control node's signature: those calls keep the
function they were written with, and a function body they share with top-level calls is copied
(overload '<k>.stats') so that only the top-level calls gain the two outputs.
"""

from __future__ import annotations

import onnx

__all__ = ["body_calls", "not_exposed", "retarget"]


def body_calls(graph: onnx.GraphProto, name: str, prefix: str | None = None
               ) -> list[tuple[str, onnx.NodeProto]]:
    """(report path '<control node>/<attribute>/…', call) of the hjplug `name` calls inside the
    subgraph bodies of `graph` (recursively; a call's own metadata holds the body-local path)."""
    out: list[tuple[str, onnx.NodeProto]] = []
    for n in graph.node:
        if prefix is not None and n.domain == "hjplug" and n.op_type == name:
            own = next((p.value for p in n.metadata_props if p.key == "hjplug.path"), n.name)
            out.append((f"{prefix}/{own}", n))
        for a in n.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                      list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                here = f"{n.name}/{a.name}" if prefix is None else f"{prefix}/{n.name}/{a.name}"
                out += body_calls(g, name, here)
    return out


def retarget(model: onnx.ModelProto, calls: list[onnx.NodeProto], shared: set[str]) -> None:
    """Top-level `calls` whose overload is also used inside a body move to a copy of it."""
    for c in calls:
        if c.overload not in shared:
            continue
        src = next((f for f in model.functions if f.domain == "hjplug"
                    and f.name == c.op_type and f.overload == c.overload), None)
        new = f"{c.overload}.stats"
        if src is not None and not any(f.domain == "hjplug" and f.name == c.op_type
                                       and f.overload == new for f in model.functions):
            copy = model.functions.add()
            copy.CopyFrom(src)
            copy.overload = new
        c.overload = new


def not_exposed(inner: list[tuple[str, onnx.NodeProto]]) -> str:
    paths = [p for p, _ in inner]
    return (f"statistics of {len(inner)} attention block(s) inside control-flow bodies are not "
            f"exposed ({', '.join(paths)}): a value computed inside an If / Loop / Scan body "
            "leaves it only through the control node's own outputs (per iteration for Loop / "
            "Scan), so it cannot become a graph output; their functions are left unchanged")
