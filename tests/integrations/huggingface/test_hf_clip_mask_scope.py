"""CLIP (tiny, from a config): the text `attention_mask` marks padded *text* queries only. With
as many text tokens as vision positions (patches + CLS) the shapes coincide, and the mask must
still never be applied to the vision tower's rows (summary and sweep means), checked against a
hand computation from eager fp64 attentions."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import transformers as tf

import hjplug

B, H, S = 2, 4, 5  # image 8×8, patch 4 → 4 patches + CLS = 5 positions = text length


def _clip() -> Any:
    torch.manual_seed(0)
    cfg = tf.CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=H, max_position_embeddings=16,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=H, image_size=8, patch_size=4, num_channels=3),
        projection_dim=16)
    return tf.CLIPModel(cfg).eval()


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, 3:] = 0
    return {"input_ids": torch.randint(3, 99, (B, S), generator=g), "attention_mask": mask,
            "pixel_values": torch.randn(B, 3, 8, 8, generator=g)}


@torch.no_grad()
def _reference(inputs: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
    """Module path → (mean entropy [H] over real queries with ≥ 2 visible keys, row count)."""
    model = _clip().double()
    model.set_attn_implementation("eager")
    out = model(**inputs, output_attentions=True)
    real = inputs["attention_mask"].bool()
    text_rows = real & (torch.ones(S, S).tril().bool()[None] & real[:, None]).sum(-1).gt(1)
    all_rows = torch.ones(B, S, dtype=torch.bool)
    ref = {}
    for tower, att, rows in (("text", out.text_model_output.attentions, text_rows),
                             ("vision", out.vision_model_output.attentions, all_rows)):
        for i, p in enumerate(att):  # [B, H, S, S]
            ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
            ref[f"{tower}_model.encoder.layers.{i}.self_attn"] = (
                torch.stack([ent[:, h][rows].mean() for h in range(H)]), int(rows.sum()))
    return ref


@pytest.mark.parametrize("backend", ["stats", "kernel"])
def test_text_mask_never_reaches_vision_rows(backend: str) -> None:
    inputs = _inputs()
    ref = _reference(inputs)
    model = _clip()
    with torch.no_grad(), hjplug.instrument(model, stats=("entropy",), backend=backend) as rec:
        model(**inputs)
    heads = [s for s in rec.summary() if s.kind == "attention"]
    assert {s.path for s in heads} == set(ref)
    for s in heads:
        want, rows = ref[s.path]
        assert s.rows == rows, s.path
        assert math.isclose(s.mean_entropy, float(want[s.head]), rel_tol=1e-4, abs_tol=1e-5)
    for p in rec.prefixes():
        if rec.paths[p].startswith("vision_model") and f"{p}.query_valid" in rec:
            assert bool(rec[f"{p}.query_valid"].all())


def test_sweep_vision_means_use_every_row() -> None:
    inputs = _inputs()
    ref = _reference(inputs)
    sw = hjplug.sweep(_clip(), inputs, [1.0], folds=False)
    for i, path in enumerate(sw.paths):
        torch.testing.assert_close(sw.entropy[0, i], ref[path][0], rtol=1e-4, atol=1e-5)
