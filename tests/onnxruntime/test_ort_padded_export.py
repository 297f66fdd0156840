"""Exports whose example inputs hold padding, and padded runs of the exported file.

A left-padded example (GPT-2, Llama: causal) has query rows that see no key at all; PyTorch and
ONNX Runtime legitimately differ on those rows (garbage either way). The dynamic-axis probe must
not read that as "the axis cannot vary" and export a static graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ort_models import build

from hjplug.integrations.onnxruntime import export_onnx, session
from hjplug.integrations.onnxruntime.sessions import run

pytestmark = pytest.mark.slow


def _left_padded(batch: int, seq: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, : min(3, seq - 1)] = 0  # left padding: the first queries see no key
    return {"input_ids": torch.randint(1, 99, (batch, seq), generator=g), "attention_mask": mask}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_left_padded_example_keeps_axes_dynamic(tmp_path, family: str) -> None:
    model = build(family)
    r = export_onnx(model, tmp_path / f"{family}.onnx", _left_padded(2, 7, 0), stats=True)
    assert r.dynamic_axes.get("input_ids") == {0: "batch", 1: "sequence"}, r.notes
    assert not any("fixed at" in n for n in r.notes), r.notes
    for batch, seq in ((3, 11), (1, 4)):
        x = _left_padded(batch, seq, 1)
        with torch.no_grad():
            want = model(**x, use_cache=False).logits.numpy()
        got = run(session(r.path), x)[r.outputs[0]]
        valid = x["attention_mask"].bool().numpy()
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)[valid]) <= 1e-4
