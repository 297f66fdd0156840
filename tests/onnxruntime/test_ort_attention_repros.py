"""The three wrong-answer classes found in the FX attention rule, checked on the ONNX path:

1. a bias added before a later scaling, softmax((Q·Kᵀ + B)/c)·V: the logits hold B/c;
2. causal attention with Sq ≠ Sk (SDPA is_causal and the opset-23 `Attention` op: top-left
   without past_key);
3. finfo.min masks the model then scales, (S + finfo.min)/c, are removed keys (≤ −10³⁰).

Each export runs in ONNX Runtime against the plain export and PyTorch (parity), and its
statistics against an independent fp64 NumPy evaluation of the softmax on the original logits.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from hjplug.integrations.onnxruntime import export_onnx

REMOVED_BELOW = -1.0e30  # hjplug.modules.attention_bias: a score ≤ −10³⁰ is a removed key
FMIN = torch.finfo(torch.float32).min


class BiasThenScale(nn.Module):
    """softmax((Q·Kᵀ + B)/c)·V: the division also scales the bias."""

    def __init__(self, c: float = 8.0) -> None:
        super().__init__()
        self.c = c

    def forward(self, q, k, v, bias):
        return torch.softmax((q @ k.transpose(-1, -2) + bias) / self.c, dim=-1) @ v


class Causal(nn.Module):
    def forward(self, q, k, v):
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _qkv(sq: int, sk: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, 2, n, 4, generator=g) for n in (sq, sk, sk))


def _reference(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LSE, H) per row in fp64, keys with z ≤ −10³⁰ removed; a row with none kept: (−∞, 0)."""
    z = np.asarray(z, dtype=np.float64)
    lse, ent = np.full(z.shape[:-1], -np.inf), np.zeros(z.shape[:-1])
    for idx in np.ndindex(*z.shape[:-1]):
        row = z[idx][z[idx] > REMOVED_BELOW]
        if row.size:
            m = row.max()
            lse[idx] = m + np.log(np.exp(row - m).sum())
            p = np.exp(row - lse[idx])
            ent[idx] = -(p * np.log(p)).sum()
    return lse, ent


def _export(model: nn.Module, args: tuple, tmp_path, opset: int | None = None):
    """(export result, ORT outputs by name of the analysed file, primary output of the plain
    dynamo export in ORT, PyTorch's output)."""
    model.eval()
    r = export_onnx(model, tmp_path / "analysed.onnx", args, stats=True, opset=opset,
                    dynamic=False)
    with torch.no_grad():
        prog = torch.onnx.export(model, args, dynamo=True, verbose=False, opset_version=opset)
        expected = model(*args).numpy()
    prog.save(str(tmp_path / "plain.onnx"))
    feeds = dict(zip(r.inputs, (a.numpy() for a in args), strict=True))
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    plain = ort.InferenceSession(str(tmp_path / "plain.onnx"),
                                 providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return r, outs, plain, expected


def _stats(r, outs) -> tuple[np.ndarray, np.ndarray]:
    by = {s.stat: outs[s.name] for s in r.stats}
    return by["log_partition"], by["entropy"]


def _assert_stats(r, outs, z64: np.ndarray) -> None:
    lse, ent = _stats(r, outs)
    ref_lse, ref_ent = _reference(z64)
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite), (lse, ref_lse)
    assert np.all(lse[~finite] == -np.inf) and np.all(ent[~finite] == 0.0)
    np.testing.assert_allclose(lse[finite], ref_lse[finite], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, ref_ent, rtol=1e-4, atol=1e-5)


def _bias(sq: int, sk: int, *, empty_row: bool) -> torch.Tensor:
    b = torch.randn(1, 2, sq, sk, generator=torch.Generator().manual_seed(1)) * 3
    b[0, 0, 1, 2:] = FMIN  # padding-style finfo.min stand-ins on some keys
    if empty_row:
        b[0, 1, 2, :] = FMIN  # a query with every key removed
    return b


# ---- 1. bias before a later scaling ------------------------------------------------------------
def test_bias_before_scale_parity_stats_and_reading(tmp_path) -> None:
    q, k, v = _qkv(3, 5)
    bias = _bias(3, 5, empty_row=False)
    r, outs, plain, expected = _export(BiasThenScale(8.0), (q, k, v, bias), tmp_path)
    out = outs[r.outputs[0]]
    np.testing.assert_allclose(out, plain, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    # statistics: the softmax of the model's logits z = (s + B)/c, in fp64
    z64 = (q.double() @ k.double().transpose(-1, -2) + bias.double()) / 8.0
    _assert_stats(r, outs, z64.numpy())
    (block,) = [b for b in r.report.blocks if b.kind == "attention"]
    assert block.epsilon == pytest.approx(8.0)  # z = s/ε + b with b = B/8, ε = 8
    # the reading says the bias enters the logits scaled (as the FX rule's does)
    assert "bias added before a scaling (enters the logits as 0.125·b)" in block.notes


# ---- 2. causal with Sq ≠ Sk --------------------------------------------------------------------
@pytest.mark.parametrize(("sq", "sk"), [(3, 5), (5, 3)])
@pytest.mark.parametrize("opset", [None, 23])  # exporter default (Softmax chain) / fused op
def test_causal_sq_ne_sk_top_left(tmp_path, sq: int, sk: int, opset: int | None) -> None:
    q, k, v = _qkv(sq, sk)
    r, outs, plain, expected = _export(Causal(), (q, k, v), tmp_path, opset)
    out = outs[r.outputs[0]]
    np.testing.assert_allclose(out, plain, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    (block,) = [b for b in r.report.blocks if b.kind == "attention"]
    assert block.epsilon == pytest.approx(2.0, rel=1e-6)
    if r.stats:  # the Softmax chain: top-left band, query i sees key j iff j ≤ i
        s = q.double() @ k.double().transpose(-1, -2) / 2.0
        keep = torch.ones(sq, sk, dtype=torch.bool).tril()
        _assert_stats(r, outs, s.masked_fill(~keep, -math.inf).numpy())
    else:  # the fused opset-23 Attention: no statistics; the note states the alignment
        assert opset == 23 and "top-left" in block.notes


# ---- 3. finfo.min stand-ins the model scales ---------------------------------------------------
def test_scaled_finfo_min_row_is_removed(tmp_path) -> None:
    q, k, v = _qkv(3, 5)
    bias = _bias(3, 5, empty_row=True)
    r, outs, plain, expected = _export(BiasThenScale(8.0), (q, k, v, bias), tmp_path)
    np.testing.assert_allclose(outs[r.outputs[0]], plain, atol=1e-6, rtol=0)
    np.testing.assert_allclose(outs[r.outputs[0]], expected, atol=1e-5, rtol=0)
    z64 = (q.double() @ k.double().transpose(-1, -2) + bias.double()) / 8.0
    _assert_stats(r, outs, z64.numpy())
