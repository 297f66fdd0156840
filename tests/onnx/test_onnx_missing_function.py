"""A file holding `hjplug` calls whose model-local functions are missing (stripped by a tool, or
hand-edited): `inspect_onnx` and `rewrite` each refuse it with one OnnxFileError (an
HJPlugError) naming the file, the node and its op, what was expected and what to do — never a
traceback from deeper down, never a silent report (onnx.checker accepts such a file, ONNX
Runtime refuses it) — and `rewrite` writes nothing."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx_models import lse_graph
from test_onnx_subgraph_blocks import _if_model

from hjplug.errors import HJPlugError
from hjplug.passes.onnx import OnnxFileError, inspect_onnx, rewrite
from hjplug.passes.onnx.calls import missing_functions


def stripped(src: Path, dst: Path, keep: int = 0) -> Path:
    """The rewrite of `src` with all but its first `keep` functions removed."""
    rewritten = dst.with_name("full.hj.onnx")
    rewrite(src, rewritten)
    model = onnx.load(str(rewritten))
    del model.functions[keep:]
    onnx.checker.check_model(model, full_check=True)  # the checker does not notice
    onnx.save(model, str(dst))
    return dst


def _lse_file(tmp_path: Path) -> Path:
    onnx.save(lse_graph(), str(tmp_path / "lse.onnx"))
    return tmp_path / "lse.onnx"


def _check(msg: str, path: Path, node: str, op: str, where: str = "") -> None:
    assert msg.startswith(f"{path}: node '{node}' (op hjplug.{op}, overload '0')"), msg
    assert where in msg
    assert f"calls the model-local function hjplug.{op}, which the model does not define" in msg
    assert "Expected every hjplug-domain node to call a function stored in the file" in msg
    assert "Rewrite the original model again" in msg and "\n" not in msg


@pytest.mark.parametrize("action", ["inspect", "rewrite"])
def test_stripped_functions_are_one_clear_error(tmp_path: Path, action: str) -> None:
    path = stripped(_lse_file(tmp_path), tmp_path / "stripped.onnx")
    calls = [n.name for n in onnx.load(str(path)).graph.node if n.domain == "hjplug"]
    assert len(calls) == 2
    out = tmp_path / "out.onnx"
    with pytest.raises(OnnxFileError) as caught:
        inspect_onnx(path) if action == "inspect" else rewrite(path, out)
    assert isinstance(caught.value, HJPlugError)
    msg = str(caught.value)
    _check(msg, path, calls[0], "HJLSEStep")
    assert "it defines no hjplug function" in msg and f"1 more such node(s): '{calls[1]}'" in msg
    assert not out.exists()


def test_one_overload_missing_names_the_functions_left(tmp_path: Path) -> None:
    """Hand-edited: one call's overload no longer matches any function the file keeps."""
    full = tmp_path / "full.hj.onnx"
    rewrite(_lse_file(tmp_path), full)
    model = onnx.load(str(full))
    call = next(n for n in model.graph.node if n.domain == "hjplug")
    left = sorted(f"{f.name} (overload '{f.overload}')" for f in model.functions)
    call.overload = "7"
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    assert [m.node for m in missing_functions(model)] == [call.name]
    with pytest.raises(OnnxFileError) as caught:
        inspect_onnx(path)
    msg = str(caught.value)
    assert msg.startswith(f"{path}: node '{call.name}' (op hjplug.HJLSEStep, overload '7')"), msg
    assert f"it defines {len(left)} hjplug function(s): {', '.join(left)})" in msg


def test_call_inside_an_if_branch_names_its_body(tmp_path: Path) -> None:
    path = stripped(_if_model(tmp_path / "if.onnx"), tmp_path / "stripped.onnx")
    [gate] = onnx.load(str(path)).graph.node
    then = next(a.g for a in gate.attribute if a.name == "then_branch")
    [call] = [n for n in then.node if n.domain == "hjplug"]
    for action in (lambda: inspect_onnx(path), lambda: rewrite(path, tmp_path / "o.onnx")):
        with pytest.raises(OnnxFileError) as caught:
            action()
        _check(str(caught.value), path, call.name, "HJAttentionStep",
               "inside the body 'then_branch' of If 'gate'")
