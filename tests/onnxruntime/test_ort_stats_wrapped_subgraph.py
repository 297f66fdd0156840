"""Statistics outputs with attention blocks wrapped inside If branches (now `rewrite`'s default):
a call inside a body keeps the function signature it was written with (its statistics cannot
become graph outputs: a body's values leave it only through the control node's own outputs),
top-level calls get theirs even when they share a function body with a call inside a branch,
the export notes say which blocks have no statistics and why, onnx.checker passes and ONNX
Runtime gives the unwrapped model's outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from hjplug.integrations.onnxruntime.sessions import run, session
from hjplug.integrations.onnxruntime.stats import add_stats, removal_threshold
from hjplug.passes.onnx import rewrite

sys.path.insert(0, str(Path(__file__).parents[1] / "onnx"))
from test_onnx_subgraph_blocks import S, _attention_body


def _shared_model(path: Path) -> Path:
    """The same attention at top level (A) and inside the If's then branch (identical bodies:
    one function overload for both calls)."""
    top = _attention_body()
    nodes = [*top.node]
    for n in nodes:
        n.output[:] = ["A" if o == "t" else f"top_{o}" for o in n.output]
        n.input[:] = [f"top_{x}" if x in ("kt", "s", "z", "p") else x for x in n.input]
        n.name = f"top_{n.name}" if n.name else ""
    other = h.make_graph([h.make_node("Neg", ["V"], ["e"])], "else", [],
                         [h.make_tensor_value_info("e", T.FLOAT, S)])
    nodes.append(h.make_node("If", ["C"], ["Y"], then_branch=_attention_body(),
                             else_branch=other, name="gate"))
    ins = [h.make_tensor_value_info(n, T.FLOAT, S) for n in "QKV"]
    graph = h.make_graph(nodes, "g", [*ins, h.make_tensor_value_info("C", T.BOOL, [])],
                         [h.make_tensor_value_info("A", T.FLOAT, S),
                          h.make_tensor_value_info("Y", T.FLOAT, S)],
                         [numpy_helper.from_array(np.array(8 ** -0.5, np.float32), "scale")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_stats_with_attention_wrapped_in_an_if_branch(tmp_path: Path) -> None:
    src, dst = _shared_model(tmp_path / "shared.onnx"), tmp_path / "shared.hj.onnx"
    report = rewrite(src, dst)  # wraps blocks inside bodies by default
    assert len(report.blocks) == 2
    m = onnx.load(str(dst))
    gate = next(n for n in m.graph.node if n.op_type == "If")
    then = next(a.g for a in gate.attribute if a.name == "then_branch")
    [inner] = [n for n in then.node if n.domain == "hjplug"]
    [top] = [n for n in m.graph.node if n.domain == "hjplug"]
    assert inner.overload == top.overload  # one body, shared before statistics
    stats, notes = add_stats(m, removal_threshold())
    onnx.checker.check_model(m, full_check=True)
    top_path = next(b.path for b in report.blocks if not b.path.startswith("gate/"))
    in_path = next(b.path for b in report.blocks if b.path.startswith("gate/"))
    assert {s.path for s in stats} == {top_path}, stats
    [note] = [n for n in notes if "control-flow" in n]
    assert in_path in note and "not exposed" in note, note
    assert len(inner.output) == 1  # the call inside the branch is left as written
    again, _ = add_stats(m, removal_threshold())  # adding twice changes nothing
    assert again == stats
    path = tmp_path / "stats.onnx"
    onnx.save(m, str(path))
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(S).astype(np.float32) for n in "QKV"}
    for cond in (True, False):
        f = {**feeds, "C": np.array(cond)}
        want, got = run(session(src), f), run(session(path), f)
        for k in ("A", "Y"):
            np.testing.assert_array_equal(got[k], want[k])
        z = np.einsum("bhqd,bhkd->bhqk", feeds["Q"], feeds["K"]) * np.float32(8 ** -0.5)
        lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
        np.testing.assert_allclose(got[stats[0].name], lse, rtol=1e-5, atol=1e-5)
