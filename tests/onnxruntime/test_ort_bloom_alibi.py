"""Bloom's ALiBi attention exported to ONNX: scores (b·h, q, k) → Reshape (b, h, q, k) → mask →
Softmax → Reshape (b·h, q, k) → MatMul(π, V). The attention rule reads through both Reshapes
(each proven to keep the key axis last) and labels the block attention, ε = √d_head, not an LSE
readout with ε = 1. The rewritten file runs as the plain one in ONNX Runtime, and its statistics
match an fp64 evaluation from q, k and the ALiBi bias."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hjplug.integrations.onnxruntime.sessions import run, session


def _bloom() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    import transformers as tf

    torch.manual_seed(0)
    model = tf.BloomForCausalLM(tf.BloomConfig(hidden_size=32, n_layer=1, n_head=4,
                                               vocab_size=97)).eval()
    ids = torch.randint(1, 97, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # right padding in the second sequence
    return model, {"input_ids": ids, "attention_mask": mask}


def _reference_stats(model: torch.nn.Module, feeds: dict[str, torch.Tensor]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(LSE, H) per (batch, head, query) in fp64: z = q·kᵀ/√d + slope_h·position_j over the
    keys j ≤ i that are not padding; the ALiBi slopes 2^(−8(h+1)/H) computed here."""
    attn = model.transformer.h[0].self_attention
    seen: dict[str, torch.Tensor] = {}

    def grab(_m: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(**feeds, use_cache=False)
    handle.remove()
    b, t, _ = seen["x"].shape
    h, d = 4, 8
    with torch.no_grad():
        qkv = attn.query_key_value(seen["x"]).double().view(b, t, h, 3, d)
    q, k = qkv[..., 0, :].transpose(1, 2), qkv[..., 1, :].transpose(1, 2)  # (b, h, t, d)
    mask = feeds["attention_mask"].double()
    position = (mask.cumsum(-1) - 1) * mask  # (b, t): Bloom's ALiBi key positions
    slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], dtype=torch.float64)
    z = q @ k.transpose(-1, -2) / math.sqrt(d) + slopes[None, :, None, None] * position[
        :, None, None, :]  # (b, h, t, t)
    keep = torch.ones(t, t, dtype=torch.bool).tril()[None, None] & mask.bool()[:, None, None, :]
    z = z.masked_fill(~keep, -math.inf)
    lse = torch.logsumexp(z, -1)
    pi = torch.softmax(z, -1)
    ent = lse - (pi * z.masked_fill(~keep, 0.0)).sum(-1)
    return lse.numpy(), ent.numpy()


@pytest.mark.filterwarnings("ignore")
def test_bloom_alibi_attention_through_reshapes(tmp_path: Path) -> None:
    import onnx

    from hjplug.integrations.onnxruntime.inputs import prepare
    from hjplug.integrations.onnxruntime.stats import add_stats
    from hjplug.integrations.onnxruntime.torch_export import export_plain
    from hjplug.passes.onnx import rewrite

    model, feeds = _bloom()
    plain, hj = tmp_path / "bloom.onnx", tmp_path / "bloom.hj.onnx"
    export_plain(prepare(model, feeds, True), plain, None)
    report = rewrite(plain, hj)
    att = [b for b in report.blocks if b.kind == "attention"]
    assert len(att) == 1 and att[0].path == "transformer.h.0.self_attention", report
    assert att[0].epsilon == pytest.approx(math.sqrt(8), rel=1e-6)
    assert not [b for b in report.blocks if b.kind == "lse"], report
    m = onnx.load(str(hj))
    stats, _ = add_stats(m, -1.0e30)
    onnx.save(m, str(hj))

    arrays = {k: v.numpy() for k, v in feeds.items()}
    ref = run(session(plain), arrays)
    got = run(session(hj), arrays)
    for name, r in ref.items():
        np.testing.assert_allclose(got[name], r, rtol=0, atol=1e-6 * max(1.0, np.abs(r).max()))
    lse, ent = _reference_stats(model, feeds)
    by_stat = {s.stat: got[s.name] for s in stats}
    assert by_stat["log_partition"].shape == lse.shape == (2, 4, 7)
    np.testing.assert_allclose(by_stat["log_partition"], lse, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(by_stat["entropy"], ent, rtol=1e-5, atol=1e-5)
