"""Bad input: one clear OnnxFileError (an HJPlugError) each, and nothing left at the output."""

from __future__ import annotations

import onnx
import onnx_models as models
import pytest
from onnx_helpers import check_rewritten

from hjplug.errors import HJPlugError
from hjplug.passes.onnx import MIN_OPSET, OnnxFileError, inspect_onnx, rewrite


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.onnx"
    onnx.save(models.lse_graph(), str(path))
    return path


def _fails(src, dst, *words):
    with pytest.raises(OnnxFileError) as info:
        rewrite(src, dst)
    assert isinstance(info.value, HJPlugError)
    text = str(info.value)
    for w in words:
        assert w in text, text
    assert not dst.exists()
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}")]
    return text


def test_truncated_file(good, tmp_path):
    data = good.read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    _fails(bad, tmp_path / "out.onnx", str(bad), "truncated", "re-export")


def test_not_onnx_at_all(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01" * 10)
    _fails(bad, tmp_path / "out.onnx", str(bad), "ONNX")


def test_empty_and_missing_file(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _fails(empty, tmp_path / "out.onnx", "empty (0 bytes)")
    _fails(tmp_path / "nope.onnx", tmp_path / "out.onnx", "no such file")


def test_opset_too_old(tmp_path):
    model = models.lse_graph()
    model.opset_import[0].version = MIN_OPSET - 1
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    text = _fails(old, tmp_path / "out.onnx", f"opset {MIN_OPSET - 1} is too old",
                  f"≥ {MIN_OPSET}", "version_converter")
    assert str(old) in text


def test_missing_external_data(tmp_path):
    model = models.lse_graph()
    src = tmp_path / "ext.onnx"
    onnx.save(model, str(src), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.weights", size_threshold=0)
    (tmp_path / "ext.weights").unlink()
    _fails(src, tmp_path / "out.onnx", "ext.weights", "not found", str(tmp_path))
    with pytest.raises(OnnxFileError, match=r"ext\.weights"):
        inspect_onnx(src)


def test_external_data_round_trip(tmp_path):
    src = tmp_path / "ext.onnx"
    onnx.save(models.ms_attention(), str(src), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.weights", size_threshold=0)
    dst = tmp_path / "out" / "ext.hj.onnx"
    dst.parent.mkdir()
    report = rewrite(src, dst)
    assert len(report.blocks) == 1
    assert (dst.parent / "ext.hj.onnx.data").is_file()  # the (16, 48) weights: 3 kB
    assert sorted(p.name for p in dst.parent.iterdir()) == ["ext.hj.onnx", "ext.hj.onnx.data"]

    check_rewritten(src, dst)


def test_output_directory_missing(good, tmp_path):
    dst = tmp_path / "no" / "such" / "dir" / "out.onnx"
    with pytest.raises(OnnxFileError, match="does not exist") as info:
        rewrite(good, dst)
    assert "mkdir" in str(info.value)
    assert not dst.parent.exists()


def test_output_is_a_directory(good, tmp_path):
    with pytest.raises(OnnxFileError, match="is a directory"):
        rewrite(good, tmp_path)


def test_failed_write_leaves_previous_file_intact(good, tmp_path, monkeypatch):
    dst = tmp_path / "out.onnx"
    dst.write_bytes(b"previous")
    import hjplug.passes.onnx.io as io

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OnnxFileError, match="disk full"):
        rewrite(good, dst)
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.onnx", "out.onnx"]
