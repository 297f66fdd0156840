"""Blocks inside the bodies of If / Loop / Scan (any node with graph attributes).

Each body is indexed (`GraphIndex` over the body as the top-level shape inference left it, with
its value_info) and scanned by the same rules, recursively. A block found there is reported with
the path '<control node>/<attribute>/<block path>'; `rewrite` wraps it inside that body (see
`wrap`), its function model-local as for any block. A body in which no rule found a block is a
near-miss naming the control node, the body and its ops; near-misses inside a body keep their
reason, their node named by the same prefix. Nothing inside a subgraph is skipped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import onnx

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch, OnnxRule

__all__ = ["NAME", "SubgraphScan", "as_model", "bodies", "scan_subgraphs"]

NAME = "subgraph"
_MAX_DEPTH = 8


@dataclass(frozen=True)
class SubgraphScan:
    """Blocks and near-misses found inside subgraph bodies; `bodies` = number of bodies seen."""

    matches: tuple[OnnxMatch, ...] = ()
    near_misses: tuple[NearMiss, ...] = ()
    bodies: int = 0


def bodies(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """(attribute name, body) of each graph attribute of `node` ('name[k]' for graph lists)."""
    out: list[tuple[str, onnx.GraphProto]] = []
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            out.append((a.name, a.g))
        elif a.type == onnx.AttributeProto.GRAPHS:
            out += [(f"{a.name}[{k}]", g) for k, g in enumerate(a.graphs)]
    return out


def as_model(parent: onnx.ModelProto, body: onnx.GraphProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.ir_version = parent.ir_version
    m.opset_import.extend(parent.opset_import)
    m.graph.CopyFrom(body)
    return m


def _ops(body: onnx.GraphProto) -> str:
    counts = Counter(n.op_type for n in body.node).most_common(5)
    text = ", ".join(op if k == 1 else f"{op}×{k}" for op, k in counts)
    return text + (", …" if len({n.op_type for n in body.node}) > 5 else "")


def _outside(m: OnnxMatch, anchor: int, attr: str, label: str, where: str) -> OnnxMatch:
    """Block `m` of the body `attr` of node `anchor`, as a match of the enclosing graph."""
    spec = replace(m.spec, path=f"{label}/{m.spec.path}",
                   notes="; ".join(filter(None, [m.spec.notes, f"inside {where}"])))
    inner = m if m.inner is None else m.inner
    return OnnxMatch(m.rule, spec, anchor, (anchor,), f"{label}: {m.source}", wrap=False,
                     body=((anchor, attr), *m.body), inner=inner)


def scan_subgraphs(g: GraphIndex, rules: Sequence[OnnxRule] | None = None,
                   depth: int = 0) -> SubgraphScan:
    """Run `rules` over every subgraph body of `g` (recursively); see the module docstring."""
    from hjplug.passes.onnx.runner import recognize

    matches: list[OnnxMatch] = []
    misses: list[NearMiss] = []
    seen = 0
    for i, n in enumerate(g.nodes):
        where = f"{n.op_type} '{g.name(i)}'"
        for attr, body in bodies(g.node_with_shapes(i)):
            seen += 1
            label = f"{g.name(i)}/{attr}"
            if depth >= _MAX_DEPTH:
                misses.append(NearMiss(NAME, g.name(i), g.block_path(i), f"{where} body "
                                       f"'{attr}' is nested {depth} subgraphs deep: not scanned"))
                continue
            sub = GraphIndex(as_model(g.model, body))
            rec = recognize(sub, rules)
            inner = scan_subgraphs(sub, rules, depth + 1)
            seen += inner.bodies
            found = [*rec.matches, *inner.matches]
            matches += [_outside(m, i, attr, label, f"{where} ({attr})") for m in found]
            misses += [replace(x, node=f"{label}/{x.node}", path=f"{label}/{x.path}")
                       for x in (*rec.near_misses, *inner.near_misses)]
            if not found:
                why = f"; near-misses inside: {len(rec.near_misses)}" if rec.near_misses else ""
                misses.append(NearMiss(NAME, g.name(i), g.block_path(i), (
                    f"{where} body '{attr}' ({len(body.node)} nodes: {_ops(body) or 'none'}) "
                    f"holds no recognised block{why}")))
    return SubgraphScan(tuple(matches), tuple(misses), seen)
