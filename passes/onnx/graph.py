"""A read-only index over an ONNX graph: producers, consumers, constants, shapes, provenance."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = ["LEARNED_OPS", "GraphIndex", "reads", "shape_skeleton"]

# ops whose weights are learned (a residual's update F(x) must hold one)
LEARNED_OPS = {
    "MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Attention",
    "MultiHeadAttention", "GroupQueryAttention", "Einsum", "Gather", "MatMulNBits",
    "QLinearMatMul", "MatMulInteger", "FusedMatMul", "QAttention",
}
_PASSTHROUGH = {"Cast", "Identity"}


class GraphIndex:
    """Index of `model.graph` (one level: the bodies of If/Loop/Scan get their own index, see
    `hjplug.passes.onnx.subgraphs`).
    The graph must be topologically sorted (onnx.checker enforces it; `load` runs it).

    Nodes are named by their `name` or, when empty, `<op_type>#<index>`. Shapes come from the
    value_info of `shapes` when given (the analysis passes the graph shape inference filled,
    run on `shape_skeleton(model)`), else of the graph itself.
    """

    def __init__(self, model: onnx.ModelProto, shapes: onnx.GraphProto | None = None) -> None:
        """`shapes`: the same graph with inferred value_info (e.g. shape inference run on
        `shape_skeleton(model)`); its bodies of If / Loop / Scan are what `bodies_of` gives."""
        self.model = model
        self.graph = model.graph
        self.nodes = list(self.graph.node)
        self.shape_graph = shapes if shapes is not None else self.graph
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
        for v in (*self.graph.input, *self.shape_graph.value_info, *self.graph.output):
            self.types[v.name] = v.type
        for t in self.graph.initializer:
            self.types[t.name] = onnx.helper.make_tensor_type_proto(t.data_type, list(t.dims))
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self._folded: dict[str, np.ndarray | None] = {}
        self._symbolic: dict[str, tuple[int | str | None, ...]] | None = None

    def node_with_shapes(self, i: int) -> onnx.NodeProto:
        """Node i as in the shapes graph (its subgraph bodies carry inferred value_info)."""
        nodes = self.shape_graph.node
        return nodes[i] if len(nodes) == len(self.nodes) else self.nodes[i]

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

    def fold(self, value: str, depth: int = 16) -> np.ndarray | None:
        """The value of `value` when it is computed from constants and *shapes* only (e.g. the
        TorchScript exporter's SDPA scale 1/√(Shape(q)[-1])), with the static dims that shape
        inference gave; None when it depends on data or on a symbolic dim."""
        c = self.constant(value)
        if c is not None or depth <= 0:
            return c
        if value in self._folded:
            return self._folded[value]
        self._folded[value] = out = self._fold(value, depth)
        return out

    def _fold(self, value: str, depth: int) -> np.ndarray | None:
        n = self.node_of(value)
        if n is None or (n.domain or "") != "" or len(n.output) != 1:
            return None
        i = self.producer[value]
        if n.op_type == "Shape":
            dims = self._shape_of(n.input[0], depth - 1)
            if dims is None:
                return None
            start, end = self.attr(i, "start", 0), self.attr(i, "end", None)
            return np.array(list(dims)[start:end], dtype=object)
        if n.op_type not in _FOLD:
            return None
        args = []
        for x in n.input:
            a = self.fold(x, depth - 1) if x else None
            if x and a is None:
                return None
            args.append(a)
        try:
            out = _FOLD[n.op_type](self, i, args)
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError):
            return None
        if out is None:
            return None
        out = np.asarray(out)
        return out.astype(object) if out.dtype.kind in "USO" else out

    def _shape_of(self, value: str, depth: int) -> list | None:
        """Dims of `value`: inferred ones, with unknown dims filled from a Reshape (target
        folded from shapes) through Transpose / Cast / Identity (a symbolic dim stays a str)."""
        dims = self.shape(value)
        if dims is not None and all(isinstance(d, int) for d in dims):
            return list(dims)
        derived: list | None = None
        n = self.node_of(value)
        if n is not None and depth > 0:
            i = self.producer[value]
            if n.op_type in _PASSTHROUGH:
                derived = self._shape_of(n.input[0], depth - 1)
            elif n.op_type == "Transpose":
                src = self._shape_of(n.input[0], depth - 1)
                if src is not None:
                    perm = self.attr(i, "perm") or list(range(len(src)))[::-1]
                    derived = [src[p] for p in perm]
            elif n.op_type == "Reshape" and not self.attr(i, "allowzero", 0):
                target = self.fold(n.input[1], depth - 1)
                src = self._shape_of(n.input[0], depth - 1)
                if target is not None:
                    derived = [(src[k] if src is not None and k < len(src) else None)
                               if isinstance(t, int | np.integer) and t == 0 else
                               (None if isinstance(t, int | np.integer) and t < 0 else t)
                               for k, t in enumerate(target.reshape(-1).tolist())]
        if dims is None:
            return derived
        if derived is None or len(derived) != len(dims):
            return list(dims)
        return [d if isinstance(d, int) else (e if e is not None else d)
                for d, e in zip(dims, derived, strict=True)]

    def keeps_last_axis(self, i: int) -> bool:
        """Is Reshape node i proven to keep its input's last axis as its own last axis (so a
        softmax over it still runs over the same keys)? Evidence, soundest first: the folded
        target's last entry (a number, 0 at the same position, or the very dim of a Shape) is
        the input's last dim; or the input's and output's last dims agree, by the graph's
        inferred shapes or else by symbolic shape inference from the graph inputs' dims
        (onnxruntime's, which carries `4*batch` through Shape / Concat / Reshape arithmetic,
        where the exporter's own value_info names the same dim `((s53**2)//s53)`)."""
        n = self.nodes[i]
        if n.op_type != "Reshape" or len(n.input) < 2:
            return False
        src, out = n.input[0], n.output[0]
        shape_in = self._shape_of(src, 8)
        target = self.fold(n.input[1])
        if shape_in and target is not None and target.ndim == 1 and target.size:
            last = target[-1]
            if isinstance(last, int | np.integer) and last == 0:  # copies dim size−1 of the
                return not self.attr(i, "allowzero", 0) and target.size == len(shape_in)  # input
            if _same_dim(last, shape_in[-1]):
                return True
        if _same_dim((self.shape(out) or (None,))[-1], (self.shape(src) or (None,))[-1]):
            return True
        a, b = self.symbolic_shapes().get(src), self.symbolic_shapes().get(out)
        return a is not None and b is not None and len(a) > 0 and len(b) > 0 \
            and _same_dim(a[-1], b[-1])

    def symbolic_shapes(self) -> dict[str, tuple[int | str | None, ...]]:
        """Shapes by onnxruntime's symbolic shape inference, run once from the graph inputs
        (the exporter's value_info dropped, so every dim is an expression in the inputs' dim
        names) on `shape_skeleton` (weights left out: all-MiniLM-L6-v2, 87 MiB, took 580 ms
        and +330 MiB peak memory with a full copy); {} when it is unavailable or fails."""
        if self._symbolic is None:
            self._symbolic = {}
            try:
                from onnxruntime.tools.symbolic_shape_infer import (  # type: ignore[import-untyped]
                    SymbolicShapeInference,
                )

                done = SymbolicShapeInference.infer_shapes(shape_skeleton(self.model),
                                                           auto_merge=False)
            except Exception:  # shapes are evidence when available, never a requirement
                return self._symbolic
            for v in (*done.graph.value_info, *done.graph.output):
                t = v.type.tensor_type
                if v.type.HasField("tensor_type") and t.HasField("shape"):
                    self._symbolic[v.name] = tuple(
                        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                        for d in t.shape.dim)
        return self._symbolic

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


_SKELETON_MAX = 1024  # initializers up to this many elements (shape tensors, scales) stay


def shape_skeleton(model: onnx.ModelProto, value_info: bool = False) -> onnx.ModelProto:
    """`model` for shape inference only: nodes, functions, inputs and outputs copied; each large
    initializer (a weight: its values never decide a shape) becomes a graph input of its type
    and shape instead of being copied; the exporter's value_info only with `value_info`."""
    out = onnx.ModelProto()
    out.ir_version = max(model.ir_version, 4)  # initializers need not be graph inputs
    out.opset_import.extend(model.opset_import)
    out.functions.extend(model.functions)
    src, g = model.graph, out.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    if value_info:
        g.value_info.extend(src.value_info)
    declared = {v.name for v in src.input}
    for t in src.initializer:
        if int(np.prod(t.dims, dtype=np.int64)) <= _SKELETON_MAX:
            g.initializer.append(t)
        elif t.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return out


def _same_dim(a: object, b: object) -> bool:
    """Two dims known to be equal: the same positive number, or the same symbolic name."""
    if isinstance(a, int | np.integer) and isinstance(b, int | np.integer):
        return int(a) == int(b) > 0
    return isinstance(a, str) and a == b


def _known(a: np.ndarray) -> np.ndarray | None:
    """`a` as numbers (None when it holds a symbolic dim)."""
    if a.dtype == object:
        if any(not isinstance(v, int | np.integer) for v in a.reshape(-1)):
            return None
        return a.astype(np.int64)
    return a


def _cast(g: GraphIndex, i: int, a: list) -> np.ndarray | None:
    x = _known(a[0])
    to = onnx.helper.tensor_dtype_to_np_dtype(g.attr(i, "to"))
    return None if x is None else x.astype(to)


def _gather(g: GraphIndex, i: int, a: list) -> np.ndarray | None:
    idx = _known(a[1])
    return None if idx is None else np.take(a[0], idx, axis=g.attr(i, "axis", 0))


def _slice(g: GraphIndex, i: int, a: list) -> np.ndarray | None:
    x = a[0]
    starts, ends = _known(a[1]), _known(a[2])
    if starts is None or ends is None:
        return None
    axes = _known(a[3]) if len(a) > 3 and a[3] is not None else range(len(starts))
    steps = _known(a[4]) if len(a) > 4 and a[4] is not None else [1] * len(starts)
    if axes is None or steps is None:
        return None
    idx = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        idx[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(idx)]


def _arith(f: Callable[..., np.ndarray]) -> Callable[[GraphIndex, int, list], Any]:
    """A numeric op on known values only."""
    def run(_g: GraphIndex, _i: int, a: list) -> np.ndarray | None:
        xs = [_known(x) for x in a]
        if any(x is None for x in xs):
            return None
        return f(*xs)
    return run


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        return np.trunc(x / y).astype(x.dtype)  # ONNX integer Div truncates
    return x / y


# shape arithmetic `GraphIndex.fold` evaluates (numpy, on known values)
_FOLD = {
    "Identity": lambda _g, _i, a: a[0],
    "Cast": _cast,
    "Gather": _gather,
    "Slice": _slice,
    "Concat": lambda _g, _i, a: np.concatenate(a) if all(x.ndim == 1 for x in a) else None,
    "Squeeze": lambda _g, _i, a: np.squeeze(a[0]) if a[0].size == 1 else None,
    "Unsqueeze": lambda _g, _i, a: a[0].reshape(-1) if a[0].ndim == 0 else None,
    "Sqrt": _arith(np.sqrt),
    "Reciprocal": _arith(lambda x: 1.0 / x),
    "Div": _arith(_div),
    "Mul": _arith(np.multiply),
    "Add": _arith(np.add),
    "Sub": _arith(np.subtract),
    "Pow": _arith(np.power),
}


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
