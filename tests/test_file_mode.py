"""Files hjplug writes atomically get the permission bits a plain open() would give them (not
mkstemp's 0600): 0666 minus the umask for a new file, the old mode when one is replaced.
(Recordings: tests/instrument/test_record.py::test_save_is_atomic_and_round_trips.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _paper_text(p: Path) -> None:
    from hjplug.paper._common import atomic_write_text

    atomic_write_text(p, "x")


def _html(p: Path) -> None:
    from hjplug.htmlreport.render import write_atomic

    write_atomic(p, b"<html></html>")


def _onnx(p: Path) -> None:
    from hjplug.passes.onnx.io import save_atomic

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    save_atomic(helper.make_model(graph), p)


WRITERS: dict[str, Callable[[Path], None]] = {
    "report.md": _paper_text, "report.html": _html, "model.onnx": _onnx}


@pytest.mark.parametrize("name", list(WRITERS))
def test_new_file_gets_umask_mode(tmp_path: Path, umask_027: None, name: str) -> None:
    p = tmp_path / name
    WRITERS[name](p)
    assert _mode(p) == 0o640  # 0666 & ~0027


@pytest.mark.parametrize("name", list(WRITERS))
def test_replaced_file_keeps_its_mode(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"old")
    os.chmod(p, 0o604)
    WRITERS[name](p)
    assert _mode(p) == 0o604 and p.read_bytes() != b"old"
    if name == "model.onnx":
        onnx.checker.check_model(onnx.load(str(p)))
