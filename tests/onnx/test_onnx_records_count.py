"""Records survive rewriting: `inspect_onnx(dst)` reports the blocks `inspect_onnx(src)` found
(also those inside If / Loop / Scan bodies, wrapped there by default), every wrapped block is one
`hjplug` call carrying its metadata, the model-level report lists them all, and rewriting a
rewritten file neither duplicates nor loses a record (nor defines a function overload twice)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx_helpers import check_rewritten, meta
from onnx_models import _vi
from test_onnx_ssm import B, D, _scoped, scan_graph
from test_onnx_subgraph_blocks import S, _attention_body, _if_model, _loop_model

from hjplug.passes.onnx import inspect_onnx, rewrite


def _all_calls(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The hjplug calls of `graph` and of its subgraph bodies, recursively."""
    out = [n for n in graph.node if n.domain == "hjplug"]
    for n in graph.node:
        for a in n.attribute:
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                out += _all_calls(g)
    return out


def _blocks(report) -> list[tuple[str, str]]:
    return sorted((b.path, str(b.kind)) for b in report.blocks)


def _top_and_if(path: Path) -> Path:
    """The same attention at top level and inside an If's then branch (one body for both)."""
    nodes = [*_attention_body().node]
    for n in nodes:
        n.output[:] = [f"top_{o}" for o in n.output]
        n.input[:] = [f"top_{x}" if x in ("kt", "s", "z", "p") else x for x in n.input]
        n.name = f"top_{n.name}" if n.name else ""
    other = h.make_graph([h.make_node("Neg", ["V"], ["e"])], "else", [], [_vi("e", S)])
    nodes.append(h.make_node("If", ["C"], ["Y"], then_branch=_attention_body(),
                             else_branch=other, name="gate"))
    graph = h.make_graph(nodes, "g", [*(_vi(n, S) for n in "QKV"), _vi("C", [], T.BOOL)],
                         [_vi("top_t", S), _vi("Y", S)], list(_attention_body().initializer))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _if_in_loop(path: Path) -> Path:
    """A Loop whose body holds an If whose then branch holds a LogSoftmax readout (depth 2)."""
    then = h.make_graph([h.make_node("Div", ["x_in", "temp"], ["z"]),
                         h.make_node("LogSoftmax", ["z"], ["tx"], axis=-1, name="readout")],
                        "then", [], [_vi("tx", [3, 5])])
    other = h.make_graph([h.make_node("Neg", ["x_in"], ["ex"])], "else", [], [_vi("ex", [3, 5])])
    body = h.make_graph(
        [h.make_node("If", ["cond_in"], ["x_out"], then_branch=then, else_branch=other,
                     name="pick"),
         h.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [_vi("i", [], T.INT64), _vi("cond_in", [], T.BOOL), _vi("x_in", [3, 5])],
        [_vi("cond_out", [], T.BOOL), _vi("x_out", [3, 5])],
        [onnx.numpy_helper.from_array(np.array(2.0, np.float32), "temp")])
    graph = h.make_graph([h.make_node("Loop", ["n", "", "X"], ["Y"], body=body, name="steps")],
                         "g", [_vi("X", [3, 5])], [_vi("Y", [3, 5])],
                         [onnx.numpy_helper.from_array(np.array(2, np.int64), "n")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _ssm_holding_an_if(path: Path) -> Path:
    """The SSM scan of test_onnx_ssm whose readout is an If (in the mixer's scope, computed from
    Δ, so part of the SSM block) with a LogSoftmax readout in its then branch."""
    model = scan_graph("traced")
    g = model.graph
    k = next(i for i, n in enumerate(g.node) if n.name == "readout")
    then = h.make_graph([h.make_node("LogSoftmax", ["h2"], ["lp"], axis=-1, name="lsm"),
                         h.make_node("ReduceSum", ["lp", "ax_last"], ["ty"], keepdims=0)],
                        "then", [], [_vi("ty", [B, D])])
    other = h.make_graph([h.make_node("ReduceSum", ["h2", "ax_last"], ["ey"], keepdims=0)],
                         "else", [], [_vi("ey", [B, D])])
    g.node.remove(g.node[k])
    g.node.insert(k, _scoped(h.make_node("If", ["C"], ["y"], then_branch=then,
                                         else_branch=other, name="pick"), "mixer"))
    g.input.append(_vi("C", [], T.BOOL))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


MODELS = {"if": _if_model, "loop": _loop_model, "top_and_if": _top_and_if,
          "if_in_loop": _if_in_loop, "ssm_holding_an_if": _ssm_holding_an_if}


def _check_records(src: Path, dst: Path, unwrapped: int = 0) -> list[tuple[str, str]]:
    """inspect(dst) gives inspect(src)'s blocks; one call (with metadata) per block but the
    `unwrapped` ones; the model-level report holds them all. Returns the blocks."""
    want = _blocks(inspect_onnx(src))
    assert want, "the test model must hold blocks"
    model = onnx.load(str(dst))
    assert _blocks(inspect_onnx(dst)) == want
    report = json.loads({p.key: p.value for p in model.metadata_props}["hjplug.report"])
    assert sorted((b["path"], b["kind"]) for b in report["blocks"]) == want
    calls = _all_calls(model.graph)
    assert len(calls) == len(want) - unwrapped
    assert all("hjplug.spec" in meta(c) for c in calls)
    ids = [(f.domain, f.name, f.overload) for f in model.functions]
    assert len(ids) == len(set(ids)), ids
    return want


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rewrite_keeps_every_record(tmp_path: Path, name: str) -> None:
    src = MODELS[name](tmp_path / f"{name}.onnx")
    dst, again = tmp_path / f"{name}.hj.onnx", tmp_path / f"{name}.hj2.onnx"
    first = rewrite(src, dst)
    unwrapped = sum("not wrapped" in m.reason for m in first.near_misses)
    assert _blocks(first) == _check_records(src, dst, unwrapped)
    second = rewrite(dst, again)  # re-rewriting: nothing duplicated, nothing lost
    assert _blocks(second) == _blocks(first) == _check_records(src, again, unwrapped)
    a, b = onnx.load(str(dst)), onnx.load(str(again))
    assert len(_all_calls(b.graph)) == len(_all_calls(a.graph))
    assert len(b.functions) == len(a.functions)


def test_rewriting_an_unwrapped_file_reuses_its_functions(tmp_path: Path) -> None:
    """First rewrite without wrapping bodies, then with (the default): the call inside the
    branch reuses the top-level call's function (it used to define overload '0' twice, and
    onnx.checker refused the file)."""
    src = _top_and_if(tmp_path / "m.onnx")
    plain, full = tmp_path / "m.plain.onnx", tmp_path / "m.full.onnx"
    rewrite(src, plain, wrap_subgraphs=False)
    assert len(_all_calls(onnx.load(str(plain)).graph)) == 1
    report = rewrite(plain, full)
    _check_records(src, full)
    model = onnx.load(str(full))
    assert [(f.name, f.overload) for f in model.functions] == [("HJAttentionStep", "0")]
    assert {c.overload for c in _all_calls(model.graph)} == {"0"}
    assert len(_all_calls(model.graph)) == 2
    assert "functions: hjplug.HJAttentionStep (1 body)" in report.notes
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(S).astype(np.float32) for n in "QKV"}
    for cond in (True, False):
        check_rewritten(src, full, {**feeds, "C": np.array(cond)})


def test_block_holding_control_flow_is_reported_not_wrapped(tmp_path: Path) -> None:
    """An SSM block whose nodes include an If: the If's bodies read the scan's values by name,
    so the block cannot become a function body (this used to write a broken file: onnx.checker
    refused it); it is reported only, the LogSoftmax inside the branch is still wrapped there,
    and the file runs as the original."""
    src, dst = _ssm_holding_an_if(tmp_path / "m.onnx"), tmp_path / "m.hj.onnx"
    report = rewrite(src, dst)
    assert _blocks(report) == [("mixer", "ssm"), ("pick/then_branch/lsm", "lse")]
    [why] = [m for m in report.near_misses if m.rule == "ssm"]
    assert why.path == "mixer" and "If 'pick'" in why.reason and "not wrapped" in why.reason
    calls = _all_calls(onnx.load(str(dst)).graph)
    assert [c.op_type for c in calls] == ["HJLSEStep"]
    rng = np.random.default_rng(0)
    feeds = {"X": rng.standard_normal((B, 2, D)).astype(np.float32),
             "DT": rng.standard_normal((B, 2, D)).astype(np.float32)}
    for cond in (True, False):
        check_rewritten(src, dst, {**feeds, "C": np.array(cond)})
