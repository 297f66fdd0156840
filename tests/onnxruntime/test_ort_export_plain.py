"""A plain nn.Module (positional inputs, no Hugging Face) through export_onnx with statistics:
blocks, ε, dynamic axes, parity and the statistics against a direct PyTorch computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ort_checks import check_file
from ort_models import TinyAttn, tiny_attn_inputs

from hjplug.integrations.onnxruntime import check_parity, export_onnx, session
from hjplug.integrations.onnxruntime.sessions import run


def test_plain_module_with_stats(tmp_path) -> None:
    torch.manual_seed(0)
    model = TinyAttn().train()  # exported in eval mode, its mode restored afterwards
    axes = {"x": {0: "batch", 1: "sequence"}, "mask": {0: "batch", 3: "sequence"}}
    r = export_onnx(model, tmp_path / "a.onnx", tiny_attn_inputs(2, 5), stats=True,
                    dynamic=axes)
    assert model.training
    _, report = check_file(r.path)
    assert report.kinds() == {"attention": 1, "residual": 1}
    assert report.blocks[0].epsilon == pytest.approx(math.sqrt(8), rel=1e-6)
    assert r.inputs == ("x", "mask") and r.outputs == ("output",)
    assert r.dynamic_axes == axes
    x, mask = tiny_attn_inputs(3, 9, pad=4)
    assert check_parity(model, r, (x, mask)).ok(1e-4)
    out = run(session(r.path), {"x": x, "mask": mask})
    (lse_name, lse_path, _), (ent_name, _, _) = ((s.name, s.path, s.stat) for s in r.stats)
    assert lse_path == report.blocks[0].path
    q, k, _ = (y.view(3, 9, 2, 8).transpose(1, 2) for y in model.qkv(x).chunk(3, dim=-1))
    z = (q @ k.transpose(-1, -2)).double() / math.sqrt(8)
    z[-1, ..., 5:] = -math.inf  # padded keys are removed atoms
    lse = torch.logsumexp(z, -1)
    p = z.softmax(-1)
    ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
    np.testing.assert_allclose(out[lse_name], lse.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[ent_name], ent.detach().numpy(), rtol=1e-4, atol=1e-4)
    assert out[ent_name].shape == (3, 2, 9)
    # padding changes the entropy of the padded sequence only (removed, not uniform)
    assert np.all(out[ent_name][-1] <= math.log(5) + 1e-5)


def test_fused_attention_op_gets_no_stats_and_says_so(tmp_path) -> None:
    """At opset 23 SDPA exports as the fused `Attention` op: no Softmax in the function body,
    so no statistics for it; the result's notes say which block and what to do."""
    torch.manual_seed(0)
    model = TinyAttn(sdpa=True).eval()

    def full(batch: int, seq: int, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = tiny_attn_inputs(batch, seq, pad)  # ORT's Attention wants a (b, 1, q, k) mask
        return x, m.expand(batch, 1, seq, seq).contiguous()

    r = export_onnx(model, tmp_path / "f.onnx", full(2, 5), stats=True, opset=23)
    _, report = check_file(r.path)
    assert report.counts.get("attention_op") == 1 and r.stats == ()
    assert any("no statistics for 1 attention block" in n for n in r.notes), r.notes
    assert check_parity(model, r, full(2, 5, pad=2)).ok(1e-4)
