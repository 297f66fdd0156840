"""Padded query rows (HF attention_mask zeros) are excluded from Recorder.summary() means."""

from __future__ import annotations

import math

import pytest
import torch

import hjplug

transformers = pytest.importorskip("transformers")

L, H = 2, 2


def _bert() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=L,
                                  num_attention_heads=H, intermediate_size=32,
                                  max_position_embeddings=32, attn_implementation="eager")
    return transformers.BertModel(cfg).eval()


def _inputs(pad: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    if pad:
        mask[1, 4:] = 0
        ids[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _reference(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Per layer × head mean entropy of π over real query rows (eager, fp64), and their count."""
    model = _bert().double()
    with torch.no_grad():
        att = model(**inputs, output_attentions=True).attentions  # L × [B, H, Sq, Sk]
    real = inputs["attention_mask"].bool()  # [B, Sq]
    out = torch.empty(L, H, dtype=torch.float64)
    for i, p in enumerate(att):
        ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)  # [B, H, Sq]
        for h in range(H):
            out[i, h] = ent[:, h][real].mean()
    return out, int(real.sum())


def _summary(inputs: dict[str, torch.Tensor], backend: str):
    model = _bert()
    with hjplug.instrument(model, stats=("entropy", "normalized_entropy"), backend=backend
                           ) as rec, torch.no_grad():
        model(**inputs)
    return rec


@pytest.mark.parametrize("backend", ["stats", "kernel"])
@pytest.mark.parametrize("pad", [True, False])
def test_summary_excludes_padded_queries(pad: bool, backend: str) -> None:
    inputs = _inputs(pad)
    ref, n_real = _reference(inputs)
    rec = _summary(inputs, backend)
    heads = [s for s in rec.summary() if s.kind == "attention"]
    assert len(heads) == L * H
    for s in heads:
        i = int(s.name.split(".")[1])
        assert s.rows == n_real * 1  # one call per layer
        assert math.isclose(s.mean_entropy, float(ref[i, s.head]), rel_tol=1e-4, abs_tol=1e-5)
    # raw tensors keep every row; the validity is recorded beside them
    assert rec["layers.0.attn.entropy"].shape == (2, H, 7)
    qv = rec["layers.0.attn.query_valid"]
    assert qv.dtype == torch.bool and torch.equal(qv, inputs["attention_mask"].bool())


def test_padding_changes_the_mean() -> None:
    """The padded rows do differ: averaging them in would give another number."""
    inputs = _inputs(True)
    rec = _summary(inputs, "stats")
    ent = rec["layers.0.attn.entropy"][:, 0].double()
    assert not math.isclose(float(ent.mean()), rec.summary()[0].mean_entropy, abs_tol=1e-4)


def test_two_calls_rows_and_unmasked_call() -> None:
    model = _bert()
    pad, full = _inputs(True), _inputs(False)
    with hjplug.instrument(model, stats=("entropy",)) as rec, torch.no_grad():
        model(input_ids=full["input_ids"])  # no mask: all rows real
        model(**pad)
    s0 = rec.summary()[0]
    assert s0.rows == 2 * 7 + int(pad["attention_mask"].sum())
    assert len(rec.calls("layers.0.attn.query_valid")) == 2
    assert bool(rec.calls("layers.0.attn.query_valid")[0].all())


def test_converted_model_with_attention_mask() -> None:
    """hjplug.convert results called with an attention_mask keyword: same exclusion."""
    model, inputs = _bert(), _inputs(True)
    hj = hjplug.convert(model, inputs)
    ref, n_real = _reference(inputs)
    with hjplug.instrument(hj, stats=("entropy",)) as rec, torch.no_grad():
        hj(**inputs)
    heads = [s for s in rec.summary() if s.kind == "attention"]
    assert len(heads) == L * H
    for s in heads:
        i = int(s.name.split(".")[1])
        assert s.rows == n_real
        assert math.isclose(s.mean_entropy, float(ref[i, s.head]), rel_tol=1e-4, abs_tol=1e-5)

