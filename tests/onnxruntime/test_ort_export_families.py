"""Tiny GPT-2, BERT, Llama, Qwen3, ViT, Mamba and T5 (configs in code) exported with
`export_onnx(stats=True)`: full onnx.checker, hjplug calls with metadata, the report in the file,
ONNX Runtime ≤ 1e-4 of PyTorch (relative to output scale) at another batch and length than the
export's (dynamic axes), statistics outputs of shape (batch, heads, query).
~10–20 s per export: slow."""

from __future__ import annotations

import numpy as np
import pytest
from ort_checks import check_file
from ort_models import EXPECTED, FAMILIES, inputs

from hjplug.integrations.onnxruntime import check_parity, session
from hjplug.integrations.onnxruntime.sessions import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("family", FAMILIES)
def test_family_export_parity(exported, family: str) -> None:
    ex = exported(family)
    r = ex.result
    assert r.exporter == "dynamo" and r.path.is_file()
    _, report = check_file(r.path)
    assert report.kinds() == r.report.kinds()
    n_att, eps = EXPECTED[family]
    att = [b for b in r.report.blocks if b.kind == "attention"]
    assert len(att) == n_att
    assert all(b.epsilon == pytest.approx(eps, rel=1e-6) for b in att)
    # dynamic batch and sequence: other sizes than the export's example (2 × 7)
    # Mamba's exported scan is unrolled over the 7 steps: the probe fixes that axis, says so
    names = {"vit": {"pixel_values": {0: "batch"}}, "mamba": {"input_ids": {0: "batch"}}}
    assert r.dynamic_axes == names.get(family, r.dynamic_axes)
    if family == "mamba":
        assert any(n.startswith("sequence axis fixed at 7") for n in r.notes), r.notes
    elif family != "vit":
        assert r.dynamic_axes["input_ids"] == {0: "batch", 1: "sequence"}
    other = inputs(family, batch=3, seq=7 if family == "mamba" else 11, seed=1)
    parity = check_parity(ex.model, r, other)
    assert parity.ok(1e-4), parity
    assert parity.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    # statistics: two per attention step, shaped like the scores without the key axis
    assert len(r.stats) == 2 * n_att
    if n_att:
        out = run(session(r.path), other)
        for s in r.stats:
            y = out[s.name]
            assert y.ndim == 3 and y.shape[:2] == (3, 4), (s.name, y.shape)
            assert np.all(np.isfinite(y)) and (s.stat != "entropy" or np.all(y >= -1e-6))


def test_stats_off_has_model_outputs_only(tmp_path) -> None:
    import onnx
    from ort_models import build

    from hjplug.integrations.onnxruntime import export_onnx

    model = build("gpt2")
    r = export_onnx(model, tmp_path / "g.onnx")  # inputs synthesised from the config
    assert any("synthesised" in n for n in r.notes)
    assert r.stats == () and r.outputs == ("logits",)
    m = onnx.load(str(r.path))
    assert [o.name for o in m.graph.output] == ["logits"]
    assert [d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim] == [
        "batch", "sequence"]
    assert {n.op_type for n in m.graph.node if n.domain == "hjplug"} == {
        "HJAttentionStep", "HJResidualStep"}
    assert check_parity(model, r, inputs("gpt2", batch=1, seq=5)).ok(1e-4)


def test_t5_through_the_torchscript_fallback(tmp_path, monkeypatch) -> None:
    """When the dynamo exporter fails (as it did for T5), the TorchScript exporter with eager
    attention takes over; the model's attention implementation is restored afterwards."""
    from ort_models import build

    import hjplug.integrations.onnxruntime.torch_export as te
    from hjplug.integrations.onnxruntime import export_onnx

    def fail(*_a, **_k):
        raise RuntimeError("Exporting the operator 'aten::diff' to ONNX is not supported")

    monkeypatch.setattr(te, "_dynamo", fail)
    model = build("t5")
    before = model.config._attn_implementation
    r = export_onnx(model, tmp_path / "t5.onnx", inputs("t5"), stats=True)
    assert model.config._attn_implementation == before
    assert r.exporter == "legacy" and r.opset == 17
    assert any("aten::diff" in n for n in r.notes)
    _, report = check_file(r.path)
    att = [b for b in report.blocks if b.kind == "attention"]
    assert len(att) == 6 and all(b.epsilon == 1.0 for b in att)
    assert att[0].path == "encoder.block.0.layer.0.SelfAttention"
    assert r.dynamic_axes["decoder_input_ids"] == {0: "batch", 1: "decoder_sequence"}
    assert check_parity(model, r, inputs("t5", batch=3, seq=10, seed=2)).ok(1e-4)
    assert len(r.stats) == 12
