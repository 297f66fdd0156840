"""The TorchScript exporter writes SDPA with its scale computed from Q's shape at run time:
q·√s and kᵀ·√s with s = 1/√(Shape(q)[-1]) (Shape → Slice → Cast → Sqrt → Div → Sqrt). ε is
√d_head, not 1; the rule must not read the unscaled MatMul as ε = 1."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from ort_models import TinyAttn, tiny_attn_inputs

from hjplug.passes.onnx import inspect_onnx


@pytest.mark.parametrize("dynamic", [False, True])
def test_legacy_sdpa_runtime_scale_gives_sqrt_dhead(tmp_path, dynamic: bool) -> None:
    torch.manual_seed(0)
    path = tmp_path / "sdpa.onnx"
    axes = {"x": {0: "b", 1: "t"}, "mask": {0: "b", 3: "t"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyAttn(sdpa=True).eval(), tiny_attn_inputs(2, 5), str(path),
                          dynamo=False, opset_version=17, input_names=["x", "mask"],
                          dynamic_axes=axes)
    att = [b for b in inspect_onnx(path).blocks if str(b.kind) == "attention"]
    assert len(att) == 1
    assert att[0].epsilon == pytest.approx(math.sqrt(8), rel=1e-6), att[0].notes
    assert "no explicit scale" not in att[0].notes
