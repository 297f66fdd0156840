"""Encoder-decoder models (T5, BART; tiny, from configs): padded query rows are left out of the
summary and sweep means, per stack — encoder self-attention by `attention_mask`, decoder self-
and cross-attention (decoder queries) by `decoder_attention_mask` — while the recorded per-row
tensors keep every row. Checked against a hand computation from eager fp64 attentions."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import transformers as tf

import hjplug

B, S_ENC, S_DEC, H, VOCAB = 2, 7, 6, 4, 101


def _t5() -> Any:
    torch.manual_seed(0)
    cfg = tf.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=H, vocab_size=VOCAB,
                      decoder_start_token_id=0, pad_token_id=0)
    return tf.T5ForConditionalGeneration(cfg).eval()


def _bart() -> Any:
    torch.manual_seed(0)
    cfg = tf.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=H, decoder_attention_heads=H,
                        encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64)
    return tf.BartForConditionalGeneration(cfg).eval()


BUILD = {"t5": _t5, "bart": _bart}


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(B, S_ENC, dtype=torch.long)
    mask[1, 4:] = 0  # 3 padded encoder queries
    dmask = torch.ones(B, S_DEC, dtype=torch.long)
    dmask[0, 4:] = 0  # 2 padded decoder queries
    return {"input_ids": torch.randint(3, VOCAB, (B, S_ENC), generator=g), "attention_mask": mask,
            "decoder_input_ids": torch.randint(3, VOCAB, (B, S_DEC), generator=g),
            "decoder_attention_mask": dmask}


@torch.no_grad()
def _reference(name: str, inputs: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, int]]:
    """Per block, in module order (encoder layers; then per decoder layer self, cross): the mean
    entropy [H] of eager fp64 π over real queries with ≥ 2 visible keys, and that row count."""
    model = BUILD[name]().double()
    model.set_attn_implementation("eager")
    out = model(**inputs, output_attentions=True)
    enc, dec = inputs["attention_mask"].bool(), inputs["decoder_attention_mask"].bool()
    causal = torch.ones(S_DEC, S_DEC).tril().bool()
    vis_self = causal[None] & dec[:, None, :]  # [B, S_DEC, S_DEC]
    vis_cross = enc[:, None, :].expand(B, S_DEC, S_ENC)
    blocks = [(p, enc[:, None, :].expand(B, S_ENC, S_ENC), enc) for p in out.encoder_attentions]
    for sa, ca in zip(out.decoder_attentions, out.cross_attentions, strict=True):
        blocks += [(sa, vis_self, dec), (ca, vis_cross, dec)]
    ref = []
    for p, vis, real in blocks:  # p [B, H, Sq, Sk]
        ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)  # [B, H, Sq]
        rows = real & (vis.sum(-1) > 1)  # [B, Sq]
        ref.append((torch.stack([ent[:, h][rows].mean() for h in range(H)]), int(rows.sum())))
    return ref


@pytest.mark.parametrize("backend", ["stats", "kernel"])
@pytest.mark.parametrize("name", ["t5", "bart"])
def test_summary_excludes_padded_queries_per_stack(name: str, backend: str) -> None:
    inputs = _inputs()
    ref = _reference(name, inputs)
    model = BUILD[name]()
    with torch.no_grad(), hjplug.instrument(model, stats=("entropy",), backend=backend) as rec:
        model(**inputs)
    heads = [s for s in rec.summary() if s.kind == "attention"]
    assert len(heads) == len(ref) * H
    for s in heads:
        i = int(s.name.split(".")[1])
        want, rows = ref[i]
        assert s.rows == rows, (s.name, s.path)
        assert math.isclose(s.mean_entropy, float(want[s.head]), rel_tol=1e-4, abs_tol=1e-5)
    # per-row records stay complete; validity recorded beside them
    enc, dec = inputs["attention_mask"].bool(), inputs["decoder_attention_mask"].bool()
    for i, prefix in enumerate(p for p in rec.prefixes() if rec.kinds[p] == "attention"):
        e = rec[f"{prefix}.entropy"]
        sq = S_ENC if i < len(ref) - 4 else S_DEC
        assert e.shape == (B, H, sq)
        assert torch.equal(rec[f"{prefix}.query_valid"], enc if sq == S_ENC else dec)


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_sweep_means_exclude_padded_queries(name: str) -> None:
    inputs = _inputs()
    ref = _reference(name, inputs)
    sw = hjplug.sweep(BUILD[name](), inputs, [1.0], folds=False)
    for i, (want, _) in enumerate(ref):
        torch.testing.assert_close(sw.entropy[0, i], want, rtol=1e-4, atol=1e-5)
        assert sw.fixed_entropy is not None
        torch.testing.assert_close(sw.fixed_entropy[0, i], want, rtol=1e-4, atol=1e-5)


def test_decoder_without_mask_counts_every_decoder_query() -> None:
    """No decoder_attention_mask: every decoder query is real; the encoder mask still applies
    to encoder queries only (never to decoder rows of the same length)."""
    inputs = _inputs()
    del inputs["decoder_attention_mask"]
    inputs["decoder_input_ids"] = inputs["decoder_input_ids"][:, :1].repeat(1, S_ENC)
    model = _t5()
    with torch.no_grad(), hjplug.instrument(model, stats=("entropy",)) as rec:
        model(**inputs)
    n_enc = int(inputs["attention_mask"].sum())
    rows = {s.name: s.rows for s in rec.summary() if s.kind == "attention"}
    assert rows["layers.0.attn"] == n_enc
    assert rows["layers.3.attn"] == B * S_ENC  # cross-attention: all decoder queries
