"""A read-only index over an ONNX graph: producers, consumers, constants, shapes, provenance."""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["LEARNED_OPS", "GraphIndex", "reads"]

# ops whose weights are learned (a residual's update F(x) must hold one)
LEARNED_OPS = {
    "MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Attention",
    "MultiHeadAttention", "GroupQueryAttention", "Einsum", "Gather", "MatMulNBits",
    "QLinearMatMul", "MatMulInteger", "FusedMatMul", "QAttention",
}
_PASSTHROUGH = {"Cast", "Identity"}


class GraphIndex:
    """Index of `model.graph` (top level only; subgraphs of If/Loop/Scan are not scanned).
    The graph must be topologically sorted (onnx.checker enforces it; `load` runs it).

    Nodes are named by their `name` or, when empty, `<op_type>#<index>`. Shapes come from the
    graph's value_info (run `onnx.shape_inference` first to fill it).
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.nodes = list(self.graph.node)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        self.reads = [reads(n) for n in self.nodes]  # explicit + subgraph (outer-scope) inputs
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for x in self.reads[i]:
                self.consumers[x].append(i)
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.graph_inputs = {v.name for v in self.graph.input}
        self.graph_outputs = {v.name for v in self.graph.output}
        self.types: dict[str, onnx.TypeProto] = {}
        for v in (*self.graph.input, *self.graph.value_info, *self.graph.output):
            self.types[v.name] = v.type
        for t in self.graph.initializer:
            self.types[t.name] = onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims))
        self.opsets = {o.domain or "": o.version for o in model.opset_import}

    # ---- naming and provenance -------------------------------------------------------------
    def name(self, i: int) -> str:
        n = self.nodes[i]
        return n.name or f"{n.op_type}#{i}"

    def meta(self, i: int) -> dict[str, str]:
        return {p.key: p.value for p in self.nodes[i].metadata_props}

    def module_path(self, i: int) -> str:
        """Module path of node i: from `pkg.torch.onnx.name_scopes` (dynamo exports), else from a
        legacy-exporter name '/encoder/layer.0/attention/Softmax', else ''."""
        scopes = _literal_list(self.meta(i).get("pkg.torch.onnx.name_scopes"))
        if scopes:  # cumulative: ['', 'encoder', 'encoder.layer.0', …, '<op>']
            return scopes[-2] if len(scopes) >= 2 else ""
        name = self.nodes[i].name
        if name.startswith("/") and name.count("/") >= 2:
            return ".".join(p for p in name.split("/")[1:-1] if p)
        return ""

    def block_path(self, i: int) -> str:
        """The `HJSpec.path` of a block anchored at node i: its module path ('(root)' for the
        top module of an export with name scopes), else its node name."""
        path = self.module_path(i)
        if path:
            return path
        return "(root)" if "pkg.torch.onnx.name_scopes" in self.meta(i) else self.name(i)

    def module_class(self, i: int) -> str:
        """Innermost module class from `pkg.torch.onnx.class_hierarchy` ('' when absent)."""
        classes = _literal_list(self.meta(i).get("pkg.torch.onnx.class_hierarchy"))
        mods = [c for c in classes if not c.startswith("aten.")]
        return mods[-1].rsplit(".", 1)[-1] if mods else ""

    def source(self, nodes: list[int] | tuple[int, ...]) -> str:
        """`hjplug.source`: the module path and class, and the original node names."""
        parts = []
        anchor = nodes[-1]
        path, cls = self.module_path(anchor), self.module_class(anchor)
        if path or cls:
            parts.append(f"module: {path or '(root)'}" + (f" ({cls})" if cls else ""))
        parts.append("nodes: " + ", ".join(self.name(i) for i in nodes))
        return "; ".join(parts)

    # ---- values ----------------------------------------------------------------------------
    def producer_of(self, value: str) -> int | None:
        return self.producer.get(value)

    def op(self, value: str) -> str:
        i = self.producer.get(value)
        return self.nodes[i].op_type if i is not None else ""

    def node_of(self, value: str) -> onnx.NodeProto | None:
        i = self.producer.get(value)
        return self.nodes[i] if i is not None else None

    def constant(self, value: str) -> np.ndarray | None:
        """The value of an initializer (not overridable by a graph input) or Constant node."""
        if value in self.initializers and value not in self.graph_inputs:
            t = self.initializers[value]
            if t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data:
                return None
            return numpy_helper.to_array(t)
        n = self.node_of(value)
        if n is not None and n.op_type == "Constant" and n.attribute:
            a = n.attribute[0]
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name in ("value_float", "value_int"):
                return np.asarray(a.f if a.name == "value_float" else a.i)
            if a.name in ("value_floats", "value_ints"):
                return np.asarray(list(a.floats) if a.name == "value_floats" else list(a.ints))
        if n is not None and n.op_type in _PASSTHROUGH:
            return self.constant(n.input[0])
        return None

    def scalar(self, value: str) -> float | None:
        """A constant holding one number (any shape of size 1), else None."""
        c = self.constant(value)
        if c is None or c.size != 1 or not np.issubdtype(c.dtype, np.number):
            return None
        return float(c.reshape(()))

    def is_constant(self, value: str) -> bool:
        if value in self.initializers and value not in self.graph_inputs:
            return True
        n = self.node_of(value)
        return n is not None and (n.op_type == "Constant"
                                  or (n.op_type in _PASSTHROUGH and self.is_constant(n.input[0])))

    def shape(self, value: str) -> tuple[int | str | None, ...] | None:
        t = self.types.get(value)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        dims = []
        for d in t.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
        return tuple(dims)

    def elem_type(self, value: str) -> int | None:
        t = self.types.get(value)
        if t is None or not t.HasField("tensor_type"):
            return None
        return t.tensor_type.elem_type or None

    def is_float(self, value: str) -> bool | None:
        et = self.elem_type(value)
        if et is None:
            return None
        return et in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                      onnx.TensorProto.BFLOAT16)

    def attr(self, i: int, name: str, default: Any = None) -> Any:
        for a in self.nodes[i].attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def skip_passthrough(self, value: str) -> str:
        """Follow Cast / Identity producers back to the original value."""
        seen = 0
        while self.op(value) in _PASSTHROUGH and seen < 8:
            value = self.nodes[self.producer[value]].input[0]
            seen += 1
        return value

    def users(self, value: str) -> list[int]:
        return list(self.consumers.get(value, ()))

    # ---- reachability ----------------------------------------------------------------------
    def upstream(self, i: int, stop: int = -1) -> set[int]:
        """Indices of the nodes node i depends on, pruned below index `stop` (graph is sorted)."""
        todo, seen = [i], set()
        while todo:
            j = todo.pop()
            for x in self.reads[j]:
                p = self.producer.get(x)
                if p is not None and p not in seen and p >= stop:
                    seen.add(p)
                    todo.append(p)
        return seen

    def downstream(self, value: str, stop: int) -> set[int]:
        """Indices of the nodes computed from `value`, pruned above index `stop`."""
        todo, seen = [value], set()
        while todo:
            for j in self.consumers.get(todo.pop(), ()):
                if j not in seen and j <= stop:
                    seen.add(j)
                    todo.extend(o for o in self.nodes[j].output if o)
        return seen

    def value_depends_on(self, value: str, on: str) -> bool:
        """True when `value` is computed from `on` (a node output or graph input)."""
        if value == on:
            return True
        i = self.producer.get(value)
        if i is None:
            return False
        p = self.producer.get(on)
        if p is not None:
            return p < i and p in self.upstream(i, stop=p)
        return any(on in self.reads[j] for j in {i} | self.upstream(i))


def reads(node: onnx.NodeProto) -> list[str]:
    """The values `node` reads: its inputs, then the outer-scope names its subgraphs (If / Loop /
    Scan bodies) use without defining them."""
    out = [x for x in node.input if x]
    for a in node.attribute:
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            out += [x for x in _free_names(sub) if x not in out]
    return out


def _free_names(graph: onnx.GraphProto) -> list[str]:
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    free: list[str] = []
    for n in graph.node:
        for x in reads(n):
            if x not in defined and x not in free:
                free.append(x)
        defined.update(n.output)
    return free


def _literal_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else []
