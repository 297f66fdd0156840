"""`stats=True`: two more outputs of every `hjplug.HJAttentionStep` function, computed in its body
from the softmax input z (the scaled + masked scores), and exposed as graph outputs.

Removed keys (scores ≤ −10³⁰ — finfo.min masks, also scaled ones — or −∞; float16: ≤ half its
minimum) are removed atoms, never uniform ones: with
m = max over kept keys, l = Σ exp(z − m), a = Σ exp(z − m)(z − m) over kept keys,

    log-partition  LSE = m + log l            entropy  H(π) = log l − a / l   (= LSE − E_π[z])

and a row with no kept key gives LSE = −∞, H = 0 (the convention of hjplug.kernels). Computed in
float32 whatever the model's dtype. Blocks whose body holds no Softmax (the fused opset-23
`Attention` op, com.microsoft contrib ops) get no statistics; the result says so.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hjplug.integrations.onnxruntime.records import StatOutput
from hjplug.integrations.onnxruntime.stats_bodies import body_calls, not_exposed, retarget

__all__ = ["MIN_STATS_OPSET", "STATS", "add_stats", "removal_threshold"]

STATS = ("log_partition", "entropy")
MIN_STATS_OPSET = 13  # ReduceSum / Squeeze with axes as an input
_ATTENTION = "HJAttentionStep"


def removal_threshold(dtype: np.dtype | str = "float32") -> float:
    """Scores at or below this are removed keys: −10³⁰ as in hjplug's kernels (masks use
    finfo.min, also after the model scales them, e.g. (s + finfo.min)/√d; SDPA uses −∞), or half
    the most negative finite value where that is higher (float16: −32752)."""
    return max(float(np.finfo(np.dtype(dtype)).min) / 2, -1.0e30)


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, ""))


def _reduce(op: str, x: str, out: str, opset: int, keepdims: int) -> onnx.NodeProto:
    if op == "ReduceSum" or opset >= 18:
        return helper.make_node(op, [x, "hs_axes"], [out], keepdims=keepdims)
    return helper.make_node(op, [x], [out], axes=[-1], keepdims=keepdims)


def stats_nodes(z: str, lse: str, ent: str, opset: int, threshold: float) -> list[onnx.NodeProto]:
    """Nodes computing (LSE, H) over the last axis of `z` (names prefixed hs_)."""
    f32 = np.float32
    return [
        _const("hs_axes", np.array([-1], dtype=np.int64)),
        _const("hs_thr", np.array(threshold, dtype=f32)),
        _const("hs_zero", np.array(0.0, dtype=f32)),
        _const("hs_one", np.array(1.0, dtype=f32)),
        _const("hs_ninf", np.array(-np.inf, dtype=f32)),
        helper.make_node("Cast", [z], ["hs_z"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["hs_z", "hs_thr"], ["hs_keep"]),  # kept atoms
        helper.make_node("Where", ["hs_keep", "hs_z", "hs_ninf"], ["hs_zk"]),
        _reduce("ReduceMax", "hs_zk", "hs_m", opset, 1),  # −∞ on rows with no kept key
        helper.make_node("IsInf", ["hs_m"], ["hs_minf"]),
        helper.make_node("Where", ["hs_minf", "hs_zero", "hs_m"], ["hs_ms"]),
        helper.make_node("Sub", ["hs_zk", "hs_ms"], ["hs_d"]),  # −∞ on removed keys
        helper.make_node("Exp", ["hs_d"], ["hs_e"]),  # 0 on removed keys
        helper.make_node("Where", ["hs_keep", "hs_d", "hs_zero"], ["hs_dk"]),  # no 0·(−∞)
        helper.make_node("Mul", ["hs_e", "hs_dk"], ["hs_ed"]),
        _reduce("ReduceSum", "hs_e", "hs_l", opset, 0),
        _reduce("ReduceSum", "hs_ed", "hs_a", opset, 0),
        helper.make_node("Squeeze", ["hs_ms", "hs_axes"], ["hs_m0"]),
        helper.make_node("Greater", ["hs_l", "hs_zero"], ["hs_seen"]),
        helper.make_node("Where", ["hs_seen", "hs_l", "hs_one"], ["hs_ls"]),
        helper.make_node("Log", ["hs_ls"], ["hs_logl"]),
        helper.make_node("Add", ["hs_m0", "hs_logl"], ["hs_lse"]),
        helper.make_node("Where", ["hs_seen", "hs_lse", "hs_ninf"], [lse]),
        helper.make_node("Div", ["hs_a", "hs_ls"], ["hs_mean"]),
        helper.make_node("Sub", ["hs_logl", "hs_mean"], ["hs_h"]),
        helper.make_node("Where", ["hs_seen", "hs_h", "hs_zero"], [ent]),
    ]


def _softmax_input(f: onnx.FunctionProto) -> str | None:
    soft = [n for n in f.node if n.op_type == "Softmax" and (n.domain or "") == ""]
    return soft[0].input[0] if len(soft) == 1 else None


def _meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def output_name(path: str, stat: str) -> str:
    return f"hjplug.stats/{path}/{stat}"


def _inferred(model: onnx.ModelProto, names: set[str]) -> dict[str, onnx.ValueInfoProto]:
    """Types of `names` by ONNX shape inference (which reads through local functions)."""
    try:
        done = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # types are a help: the fallback is rank 3, float
        return {}
    return {v.name: v for v in done.graph.value_info
            if v.name in names and v.type.tensor_type.HasField("shape")}


def add_stats(model: onnx.ModelProto, threshold: float, *,
              source: str | os.PathLike[str] = "the model given to add_stats"
              ) -> tuple[tuple[StatOutput, ...], tuple[str, ...]]:
    """Add the statistics outputs in place: every HJAttentionStep body whose scores pass through
    one Softmax gets outputs (LSE, H); each call gets two graph outputs. Returns the statistics
    outputs (also those a file exported with stats already had: adding twice changes nothing)
    and notes on blocks left without statistics. An `hjplug` call whose model-local function
    is missing raises OnnxFileError naming it and `source` (the file the model came from)."""
    from hjplug.passes.onnx.calls import missing_function_message
    from hjplug.passes.onnx.io import OnnxFileError

    if (missing := missing_function_message(model, source)) is not None:
        raise OnnxFileError(missing)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    calls = [n for n in model.graph.node if n.domain == "hjplug" and n.op_type == _ATTENTION]
    if calls and opset < MIN_STATS_OPSET:
        return (), (f"no statistics: opset {opset} < {MIN_STATS_OPSET}; export with "
                    f"opset ≥ {MIN_STATS_OPSET}",)
    inner = [c for _, c in body_calls(model.graph, _ATTENTION)]
    if calls and inner:  # a shared body: top-level calls get a copy with statistics
        retarget(model, calls, {c.overload for c in inner})
    calls_in = {c.overload for c in inner} - {c.overload for c in calls}
    ready: dict[str, bool] = {}
    for f in model.functions:
        if f.domain != "hjplug" or f.name != _ATTENTION:
            continue
        z = _softmax_input(f)
        ready[f.overload] = z is not None
        done = any("hs_lse" in n.output for n in f.node)  # added before
        if z is None or f.overload in calls_in or done:
            continue
        k = len(f.output)
        lse, ent = f"y{k}", f"y{k + 1}"
        f.node.extend(stats_nodes(z, lse, ent, opset, threshold))
        f.output.extend([lse, ent])
    added: list[StatOutput] = []
    skipped: list[str] = []
    for call in calls:
        path = _meta(call).get("hjplug.path", call.name)
        if not ready.get(call.overload, False):
            skipped.append(path)
            continue
        names = [output_name(path, s) for s in STATS]
        if "hjplug.stats" in _meta(call):  # added before (a file exported with stats)
            added += [StatOutput(name, path, stat) for name, stat in zip(names, STATS,
                                                                         strict=True)]
            continue
        call.output.extend(names)
        added += [StatOutput(name, path, stat) for name, stat in zip(names, STATS, strict=True)]
        call.metadata_props.add(key="hjplug.stats", value=json.dumps(names))
    present = {v.name for v in model.graph.output}
    types = _inferred(model, {s.name for s in added} - present)
    for s in added:
        if s.name in present:
            continue
        model.graph.output.append(types.get(s.name) or helper.make_tensor_value_info(
            s.name, TensorProto.FLOAT, ["batch", f"{s.name}:heads", f"{s.name}:query"]))
    notes = [f"no statistics for {len(skipped)} attention block(s) without an explicit Softmax "
             f"(fused attention op): {', '.join(skipped)}; export with opset ≤ 22 or eager "
             "attention to get them"] if skipped else []
    if inner:
        notes.append(not_exposed(body_calls(model.graph, _ATTENTION)))
    return tuple(added), tuple(notes)
