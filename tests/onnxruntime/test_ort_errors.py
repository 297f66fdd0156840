"""Bad input to export_onnx: one clear error each, nothing written at the output path."""

from __future__ import annotations

import pytest
import torch

from hjplug.errors import HJPlugError
from hjplug.integrations.onnxruntime import ExportError, export_onnx
from hjplug.passes.onnx import OnnxFileError


class Svd(torch.nn.Module):
    """No exporter converts aten::linalg_svd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x).S


class Lin(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.f = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


@pytest.fixture
def no_export(monkeypatch):
    """Fail the test if an export starts (path errors must come first, before any work)."""
    import hjplug.integrations.onnxruntime.torch_export as te

    def boom(*_a, **_k):
        raise AssertionError("the export started before the output path was checked")

    monkeypatch.setattr(te, "export_plain", boom)


def test_missing_output_directory(tmp_path, no_export) -> None:
    with pytest.raises(OnnxFileError, match="does not exist"):
        export_onnx(Lin(), tmp_path / "no" / "such" / "m.onnx", (torch.randn(2, 4),))


def test_output_path_is_a_directory(tmp_path, no_export) -> None:
    with pytest.raises(OnnxFileError, match="is a directory"):
        export_onnx(Lin(), tmp_path, (torch.randn(2, 4),))


def test_unwritable_directory(tmp_path, no_export, monkeypatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    import hjplug.passes.onnx.io as io

    real = io.tempfile.mkstemp  # root writes anywhere: creating the probe file must fail

    def mkstemp(*a, **k):
        if str(k.get("dir")) == str(ro):
            raise PermissionError(13, "Permission denied")
        return real(*a, **k)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    with pytest.raises(OnnxFileError, match="not writable"):
        export_onnx(Lin(), ro / "m.onnx", (torch.randn(2, 4),))
    assert list(ro.iterdir()) == []


def test_unexportable_model_names_class_and_op(tmp_path) -> None:
    dst = tmp_path / "svd.onnx"
    dst.write_bytes(b"previous content")
    with pytest.raises(ExportError) as info:
        export_onnx(Svd(), dst, (torch.randn(2, 4, 4),))
    msg = str(info.value)
    assert "cannot export Svd" in msg and "linalg_svd" in msg and "Try:" in msg
    assert isinstance(info.value, HJPlugError)
    assert dst.read_bytes() == b"previous content"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svd.onnx"]  # no temporary left


@pytest.mark.parametrize(("model", "inputs", "opset", "match"), [
    ("not a module", None, None, "expects a torch.nn.Module"),
    (Lin(), None, None, "needs example_inputs"),
    (Lin(), "text", None, "must be a tensor"),
    (Lin(), (torch.randn(2, 4),), 3, "is older than any ONNX Runtime runs"),
])
def test_bad_arguments(tmp_path, model, inputs, opset, match) -> None:
    with pytest.raises(ExportError, match=match):
        export_onnx(model, tmp_path / "m.onnx", inputs, opset=opset)
    assert not (tmp_path / "m.onnx").exists()
