"""`hjplug.convert` results keep the padded-query rule per block: a 2-D mask marks the query rows
of the blocks it reaches — encoder self-attention by `attention_mask`, decoder self- and cross-
attention (decoder queries) by `decoder_attention_mask`, a CLIP vision tower by none — even when
the shapes coincide. Summary means checked against eager fp64 attentions by hand."""

from __future__ import annotations

import math
from typing import Any

import torch
import transformers as tf

import hjplug

B, H = 2, 4


def _ent(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)  # [B, H, Sq]


def _check(model: Any, inputs: dict[str, torch.Tensor],
           blocks: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """blocks: module path → (eager fp64 π [B, H, Sq, Sk], real query rows [B, Sq])."""
    hj = hjplug.convert(model, inputs)
    with torch.no_grad(), hjplug.instrument(hj, stats=("entropy",)) as rec:
        hj(**inputs)
    heads = [s for s in rec.summary() if s.kind == "attention"]
    assert {s.path for s in heads} == set(blocks)
    for s in heads:
        p, real = blocks[s.path]
        rows = real & ((p > 0).sum(-1)[:, s.head] > 1)
        assert s.rows == int(rows.sum()), s.path
        want = float(_ent(p)[:, s.head][rows].mean())
        assert math.isclose(s.mean_entropy, want, rel_tol=1e-4, abs_tol=1e-5), s.path
        sw = hjplug.sweep(hj, inputs, [1.0], folds=False, layers=int(s.name.split(".")[1]))
        for got in (sw.entropy, sw.fixed_entropy):  # the sweep's means: the same rows
            assert got is not None
            i = int(s.name.split(".")[1])
            assert math.isclose(float(got[0, i, s.head]), want, rel_tol=1e-4, abs_tol=1e-5)


@torch.no_grad()
def _eager(model: Any, inputs: dict[str, torch.Tensor]) -> Any:
    import copy

    twin = copy.deepcopy(model).double()
    twin.set_attn_implementation("eager")
    return twin(**{k: v.double() if v.is_floating_point() else v for k, v in inputs.items()},
                output_attentions=True)


def test_converted_t5_masks_per_stack() -> None:
    torch.manual_seed(0)
    cfg = tf.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=H, vocab_size=101,
                      decoder_start_token_id=0, pad_token_id=0)
    model = tf.T5ForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(1)
    mask, dmask = torch.ones(B, 6, dtype=torch.long), torch.ones(B, 6, dtype=torch.long)
    mask[1, 4:] = 0
    dmask[0, 3:] = 0  # same length as the encoder: only the stack tells the masks apart
    inputs = {"input_ids": torch.randint(3, 101, (B, 6), generator=g), "attention_mask": mask,
              "decoder_input_ids": torch.randint(3, 101, (B, 6), generator=g),
              "decoder_attention_mask": dmask}
    out = _eager(model, inputs)
    _check(model, inputs, {
        "encoder.block.0.layer.0.SelfAttention": (out.encoder_attentions[0], mask.bool()),
        "decoder.block.0.layer.0.SelfAttention": (out.decoder_attentions[0], dmask.bool()),
        "decoder.block.0.layer.1.EncDecAttention": (out.cross_attentions[0], dmask.bool())})


def test_converted_clip_text_mask_stays_in_text_tower() -> None:
    torch.manual_seed(0)
    cfg = tf.CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37,
                         num_hidden_layers=1, num_attention_heads=H, max_position_embeddings=16,
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                           num_attention_heads=H, image_size=8, patch_size=4, num_channels=3),
        projection_dim=16)
    model = tf.CLIPModel(cfg).eval()
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, 5, dtype=torch.long)  # 5 text tokens = 4 patches + CLS
    mask[1, 3:] = 0
    inputs = {"input_ids": torch.randint(3, 99, (B, 5), generator=g), "attention_mask": mask,
              "pixel_values": torch.randn(B, 3, 8, 8, generator=g)}
    out = _eager(model, inputs)
    _check(model, inputs, {
        "text_model.encoder.layers.0.self_attn": (out.text_model_output.attentions[0],
                                                  mask.bool()),
        "vision_model.encoder.layers.0.self_attn": (out.vision_model_output.attentions[0],
                                                    torch.ones(B, 5, dtype=torch.bool))})


def test_step_hooks_gone_after_error() -> None:
    torch.manual_seed(0)
    cfg = tf.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=H, vocab_size=101,
                      decoder_start_token_id=0, pad_token_id=0)
    ids = torch.randint(3, 101, (B, 4))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "decoder_input_ids": ids, "decoder_attention_mask": torch.ones_like(ids)}
    hj = hjplug.convert(tf.T5ForConditionalGeneration(cfg).eval(), inputs)

    def hooks() -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
        return [(n, tuple(m._forward_pre_hooks), tuple(m._forward_hooks))
                for n, m in hj.named_modules()]

    before = hooks()
    try:
        with torch.no_grad(), hjplug.instrument(hj, stats=("entropy",)):
            hj(**inputs)
            raise KeyError("inside the context")
    except KeyError:
        pass
    assert hooks() == before
