"""Sessions: CPU provider here, CUDA first when onnxruntime-gpu and a GPU are both present."""

from __future__ import annotations

import pytest

from hjplug.integrations.onnxruntime import providers


def test_providers_end_with_cpu() -> None:
    import onnxruntime as ort
    import torch

    got = providers()
    assert got[-1] == "CPUExecutionProvider"
    cuda = "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()
    assert (got[0] == "CUDAExecutionProvider") == cuda


@pytest.mark.gpu
def test_cuda_provider_parity(tmp_path) -> None:
    import onnxruntime as ort
    import torch
    from ort_models import TinyAttn, tiny_attn_inputs

    from hjplug.integrations.onnxruntime import check_parity, export_onnx

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    torch.manual_seed(0)
    model = TinyAttn().eval()
    r = export_onnx(model, tmp_path / "a.onnx", tiny_attn_inputs(2, 5), stats=True)
    parity = check_parity(model, r, tiny_attn_inputs(2, 5))
    assert parity.provider == "CUDAExecutionProvider" and parity.ok(1e-4), parity
