"""`export_onnx(opset=N)` asks the installed onnx / ONNX Runtime which opsets they can use
(`hjplug.passes.onnx.opsets`), instead of a hard-coded 7…25: an opset ONNX Runtime cannot load
is refused before any export work with one ExportError (expected / found / what to do), and the
newest opset both support is accepted."""

from __future__ import annotations

import pytest
from ort_models import TinyAttn, tiny_attn_inputs

from hjplug.integrations.onnxruntime import export_onnx
from hjplug.integrations.onnxruntime.records import ExportError
from hjplug.passes.onnx import opsets


def test_opset_onnxruntime_cannot_load_is_refused_up_front(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(opsets, "ort_newest_opset", lambda: 21)  # as onnxruntime 1.20

    def no_export(*_a, **_k):
        raise AssertionError("the model was exported before the opset was checked")

    monkeypatch.setattr("hjplug.integrations.onnxruntime.torch_export.export_plain", no_export)
    with pytest.raises(ExportError) as caught:
        export_onnx(TinyAttn().eval(), tmp_path / "a.onnx", tiny_attn_inputs(2, 5), opset=23)
    msg = str(caught.value)
    assert "opset 23" in msg and "≤ 21" in msg and "expected an opset in 7…21" in msg, msg
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_newest_runnable_opset_is_accepted(tmp_path) -> None:
    high = opsets.runnable_opsets().high
    r = export_onnx(TinyAttn().eval(), tmp_path / "a.onnx", tiny_attn_inputs(2, 5), opset=high)
    assert r.opset == high or any(f"opset {high}" in n for n in r.notes), r.notes
    assert [b.kind for b in r.report.blocks].count("attention") == 1
