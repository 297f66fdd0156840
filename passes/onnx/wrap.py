"""Wrap each recognised block into a call to a model-local function in the `hjplug` domain.

The function body is the block's original standard ops (values renamed x0…, t0…, y0…), so ONNX
Runtime inlines and runs it with no custom op. Blocks with identical bodies share one function;
different bodies of one kind are `overload`s of it (IR ≥ 10). Constant nodes used only inside a
block move into its body, and single-number initializers (scales, axes) are copied into it as
Constants; everything else (weights, masks) is passed in as an input.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import onnx
from onnx import helper

from hjplug.passes.onnx.graph import GraphIndex, reads
from hjplug.passes.onnx.records import NearMiss, OnnxMatch

__all__ = ["DOMAIN", "MIN_IR_VERSION", "Wrapped", "call_metadata", "wrap"]

DOMAIN = "hjplug"
MIN_IR_VERSION = 10  # node metadata_props and function overloads
_INLINE_MAX = 1  # single-number initializers (scales, axes) may move into a body


@dataclass(frozen=True)
class Wrapped:
    """The rewritten model, the blocks wrapped (in order), and blocks left as they were."""

    model: onnx.ModelProto
    wrapped: tuple[OnnxMatch, ...]
    skipped: tuple[NearMiss, ...]
    functions: dict[str, int]  # function name → number of distinct bodies (overloads)


def call_metadata(m: OnnxMatch) -> dict[str, str]:
    """The `hjplug.*` metadata_props a call node carries."""
    s = m.spec
    return {
        "hjplug.kind": str(s.kind), "hjplug.epsilon": json.dumps(s.epsilon),
        "hjplug.hamiltonian": s.hamiltonian.formula, "hjplug.time_step": json.dumps(s.time_step),
        "hjplug.exactness": str(s.exactness), "hjplug.source": m.source,
        "hjplug.path": s.path, "hjplug.rule": m.rule, "hjplug.spec": s.to_json(),
    }


def _convex(g: GraphIndex, group: set[int]) -> bool:
    """No path leaves the group and re-enters it (else one call node would make a cycle)."""
    last = max(group)
    todo = [c for i in group for o in g.nodes[i].output if o
            for c in g.consumers.get(o, ()) if c not in group and c < last]
    seen: set[int] = set()
    while todo:
        j = todo.pop()
        if j in seen:
            continue
        seen.add(j)
        for o in g.nodes[j].output:
            for c in g.consumers.get(o, ()):
                if c in group:
                    return False
                if c < last:
                    todo.append(c)
    return True


class _Builder:
    def __init__(self, g: GraphIndex, shared: _Builder | None = None) -> None:
        """`shared`: the builder of the enclosing graph (its functions are the model's)."""
        self.g = g
        self.bodies: dict[str, dict[bytes, str]] = {} if shared is None else shared.bodies
        self.functions: list[onnx.FunctionProto] = [] if shared is None else shared.functions
        self.inlined: set[str] = set()  # initializers copied into bodies as Constants
        # overload ids in use per function name (also those of functions the model already has)
        self.taken: dict[str, set[str]] = {} if shared is None else shared.taken

    def adopt(self, functions: Sequence[onnx.FunctionProto]) -> None:
        """Know the `hjplug` functions the model already has (a file hjplug rewrote before): a
        block whose body is one of theirs calls it, and new bodies get unused overload ids, so
        that rewriting a rewritten file never defines one (name, overload) twice."""
        for f in functions:
            if f.domain != DOMAIN:
                continue
            self.taken.setdefault(f.name, set()).add(f.overload)
            opsets = [(o.domain, o.version) for o in sorted(f.opset_import,
                                                             key=lambda o: o.domain)]
            key = _key(f.node, len(f.input), len(f.output), opsets)
            self.bodies.setdefault(f.name, {}).setdefault(key, f.overload)

    def _inside_only(self, value: str, group: set[int]) -> bool:
        users = self.g.consumers.get(value, ())
        return bool(users) and all(u in group for u in users) and value not in self.g.graph_outputs

    def build(self, m: OnnxMatch) -> tuple[onnx.NodeProto, set[int]]:
        """The call node of block `m` and the node indices it replaces."""
        g = self.g
        group = set(m.nodes)
        # constants used only inside the block move in
        for i in list(group):
            for x in g.nodes[i].input:
                j = g.producer_of(x)
                if (j is not None and g.nodes[j].op_type == "Constant"
                        and self._inside_only(x, group)):
                    group.add(j)
        order = sorted(group)
        produced = {o for i in order for o in g.nodes[i].output if o}
        body: list[onnx.NodeProto] = []
        inputs: list[str] = []
        for x in dict.fromkeys(x for i in order for x in g.nodes[i].input if x):
            if x in produced:
                continue
            t = g.initializers.get(x)
            if (t is not None and x not in g.graph_inputs and _numel(t) <= _INLINE_MAX
                    and t.data_location != onnx.TensorProto.EXTERNAL):
                value = onnx.TensorProto()
                value.CopyFrom(t)
                value.name = ""  # bodies differing only in a constant's name are one function
                body.append(helper.make_node("Constant", [], [x], value=value))
                self.inlined.add(x)
            else:
                inputs.append(x)
        outputs = [o for i in order for o in g.nodes[i].output if o and (
            o in g.graph_outputs or any(c not in group for c in g.consumers.get(o, ())))]
        for i in order:
            n = onnx.NodeProto()
            n.CopyFrom(g.nodes[i])
            del n.metadata_props[:]
            body.append(n)
        overload = self._function(m.function, body, inputs, outputs)
        call = helper.make_node(m.function, inputs, outputs, domain=DOMAIN,
                                name=f"{m.function}/{g.name(m.anchor)}")
        call.overload = overload
        for k, v in call_metadata(m).items():
            call.metadata_props.add(key=k, value=v)
        return call, group

    def _function(self, name: str, body: list[onnx.NodeProto], inputs: list[str],
                  outputs: list[str]) -> str:
        rename = {x: f"x{k}" for k, x in enumerate(inputs)}
        rename.update({y: f"y{k}" for k, y in enumerate(outputs)})
        for n in body:
            for o in n.output:
                if o and o not in rename:
                    rename[o] = f"t{len(rename) - len(inputs) - len(outputs)}"
        for k, n in enumerate(body):
            n.name = f"n{k}"
            n.input[:] = [rename.get(x, x) for x in n.input]
            n.output[:] = [rename.get(x, x) for x in n.output]
        domains = sorted({n.domain or "" for n in body})
        versions = [(d, self.g.opsets.get(d, 1)) for d in domains]
        key = _key(body, len(inputs), len(outputs), versions)
        variants = self.bodies.setdefault(name, {})
        if key in variants:
            return variants[key]
        taken = self.taken.setdefault(name, set())
        overload = str(next(k for k in range(len(taken) + 1) if str(k) not in taken))
        taken.add(overload)
        variants[key] = overload
        opsets = [helper.make_opsetid(d, v) for d, v in versions]
        f = helper.make_function(DOMAIN, name, [rename[x] for x in inputs],
                                 [rename[y] for y in outputs], body, opsets,
                                 doc_string=f"hjplug {name}: the original ops of the block")
        f.overload = overload
        self.functions.append(f)
        return overload


def _key(body: Sequence[onnx.NodeProto], n_in: int, n_out: int,
         opsets: list[tuple[str, int]]) -> bytes:
    """What makes two function bodies one function: their nodes, arity and opsets."""
    key = b"".join(n.SerializeToString(deterministic=True) for n in body)
    return key + f"|{n_in}|{n_out}|{opsets}".encode()


def _holds_control_flow(g: GraphIndex, m: OnnxMatch) -> str | None:
    """Why block `m` cannot become one call when it holds an If / Loop / Scan node (None when
    it holds none): that node's bodies read values of the enclosing graph by name, which a
    function body does not see, and the blocks inside them would vanish into the function."""
    holders = [i for i in m.nodes if any(a.type in (onnx.AttributeProto.GRAPH,
                                                    onnx.AttributeProto.GRAPHS)
                                         for a in g.nodes[i].attribute)]
    if not holders:
        return None
    names = ", ".join(f"{g.nodes[i].op_type} '{g.name(i)}'" for i in holders[:3])
    return (f"block not wrapped: it holds the control-flow node(s) {names}, whose subgraph "
            "bodies cannot move into a function body (they read the enclosing graph's values "
            "by name); the block is reported only, and the blocks inside those bodies stay "
            "there")


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def _toposort(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """Stable topological order (original position breaks ties)."""
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    deps = [{producer[x] for x in reads(n) if x in producer and x not in known} for n in nodes]
    users: dict[int, list[int]] = {}
    for k, d in enumerate(deps):
        for p in d:
            users.setdefault(p, []).append(k)
    missing = [len(d) for d in deps]
    ready = [k for k, c in enumerate(missing) if c == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        k = heapq.heappop(ready)
        out.append(nodes[k])
        for u in users.get(k, ()):
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, u)
    if len(out) != len(nodes):
        raise RuntimeError("hjplug ONNX rewrite produced a cycle (a non-convex block)")
    return out


def _rewrite(graph: onnx.GraphProto, g: GraphIndex, matches: Sequence[OnnxMatch],
             b: _Builder) -> tuple[list[OnnxMatch], list[NearMiss]]:
    """Rewrite `graph` (a copy of the graph `g` indexes) in place: each wrappable match becomes
    one call; matches inside subgraph bodies are passed down to the body they live in."""
    calls: dict[int, onnx.NodeProto] = {}
    removed: set[int] = set()
    done: list[OnnxMatch] = []
    skipped: list[NearMiss] = []
    nested: dict[int, list[OnnxMatch]] = {}
    for m in matches:
        if m.inner is not None and m.body:
            nested.setdefault(m.body[0][0], []).append(m)
            continue
        if not m.wrap:
            continue
        if not _convex(g, set(m.nodes)):
            skipped.append(NearMiss(m.rule, g.name(m.anchor), m.spec.path,
                                    "block not wrapped: a path leaves it and re-enters it"))
            continue
        if (why := _holds_control_flow(g, m)) is not None:
            skipped.append(NearMiss(m.rule, g.name(m.anchor), m.spec.path, why))
            continue
        call, group = b.build(m)
        calls[max(m.nodes)] = call
        removed |= group
        done.append(m)
    new_nodes: list[onnx.NodeProto] = []
    for i, n in enumerate(g.nodes):
        if i in calls:
            new_nodes.append(calls[i])
        elif i in removed:
            skipped += [NearMiss(m.rule, g.name(i), m.spec.path, "block inside a subgraph not "
                                 "wrapped: its control node is part of another block")
                        for m in nested.get(i, ())]
        elif i in nested:
            node = onnx.NodeProto()
            node.CopyFrom(n)
            more, left = _rewrite_bodies(node, g.model, nested[i], b)
            done += more
            skipped += left
            new_nodes.append(node)
        else:
            new_nodes.append(n)
    known = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    del graph.node[:]
    graph.node.extend(_toposort(new_nodes, known))
    used = {x for n in graph.node for x in reads(n)} | {v.name for v in graph.output}
    keep = [t for t in graph.initializer if t.name not in b.inlined or t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    live = {x for n in graph.node for x in (*reads(n), *n.output)}
    vi = [v for v in graph.value_info if v.name in live]
    del graph.value_info[:]
    graph.value_info.extend(vi)
    return done, skipped


def _rewrite_bodies(node: onnx.NodeProto, model: onnx.ModelProto, matches: list[OnnxMatch],
                    outer: _Builder) -> tuple[list[OnnxMatch], list[NearMiss]]:
    """Rewrite the bodies of `node` (a copy) that hold `matches` (their `body` starts here)."""
    from hjplug.passes.onnx.subgraphs import as_model, bodies

    done: list[OnnxMatch] = []
    skipped: list[NearMiss] = []
    for attr, body in bodies(node):  # references into `node`: rewritten in place
        here = [m for m in matches if m.body[0][1] == attr]
        if not here:
            continue
        sub = GraphIndex(as_model(model, body))
        lifted = [m.inner if len(m.body) == 1 and m.inner is not None else
                  replace(m, anchor=m.body[1][0], nodes=(m.body[1][0],), body=m.body[1:])
                  for m in here]
        more, left = _rewrite(body, sub, [x for x in lifted if x is not None],
                              _Builder(sub, outer))
        done += more
        skipped += left
    return done, skipped


def wrap(model: onnx.ModelProto, g: GraphIndex, matches: tuple[OnnxMatch, ...], *,
         subgraphs: bool = True) -> Wrapped:
    """A copy of `model` in which each wrappable match is one `hjplug` function call; with
    `subgraphs` (the default), also the blocks inside If / Loop / Scan bodies (statistics
    outputs leave calls inside bodies as written: integrations/onnxruntime/stats_bodies.py)."""
    b = _Builder(g)
    b.adopt(model.functions)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not subgraphs:
        matches = tuple(m for m in matches if not m.body)
    done, skipped = _rewrite(out.graph, g, matches, b)
    out.functions.extend(b.functions)
    if done and not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    if done:
        out.ir_version = max(out.ir_version, MIN_IR_VERSION)
    counts = {name: len(v) for name, v in b.taken.items()}
    return Wrapped(out, tuple(done), tuple(skipped), counts)
