"""Round trip: `inspect_onnx` of the exported file gives the same attention steps (paths, ε),
SSM and residual steps as `hjplug.inspect` of the PyTorch model (FX pass)."""

from __future__ import annotations

import pytest
from ort_models import FAMILIES

import hjplug
from hjplug.passes.onnx import inspect_onnx

pytestmark = pytest.mark.slow


def _blocks(report, kind: str) -> list[tuple[str, object]]:
    return [(b.path, b.epsilon) for b in report.blocks if b.kind == kind]


@pytest.mark.parametrize("family", FAMILIES)
def test_file_blocks_equal_fx_blocks(exported, family: str) -> None:
    ex = exported(family)
    fx = hjplug.inspect(ex.model, ex.inputs)
    assert fx.capture != "failed", fx.notes
    onnx_report = inspect_onnx(ex.result.path)
    for kind in ("attention", "ssm", "recurrent"):
        a, b = _blocks(onnx_report, kind), _blocks(fx, kind)
        assert [p for p, _ in a] == [p for p, _ in b], kind
        assert all(e1 == pytest.approx(e2, rel=1e-6) for (_, e1), (_, e2) in zip(a, b,
                                                                                strict=True))
    assert onnx_report.kinds().get("residual") == fx.kinds().get("residual")
    # the report stored in the file says the same as reading the file back
    assert _blocks(ex.result.report, "attention") == _blocks(onnx_report, "attention")
