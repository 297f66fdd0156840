"""Families that pre-scale q (Whisper, OPT, BART: q = q_proj(x)·s₀, attention at scale 1): the FX
record gives ε in q_proj(x)'s units, 1/s₀ = √d_head (what the Hugging Face path records), and
says so — s₀ in the notes and params — in SDPA and eager; never "folded into the weights"."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import hjplug

tf = pytest.importorskip("transformers")


def _whisper(impl: str) -> tuple[torch.nn.Module, dict]:
    cfg = tf.WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=4, decoder_attention_heads=4,
                           encoder_ffn_dim=48, decoder_ffn_dim=48, num_mel_bins=8,
                           max_source_positions=8, max_target_positions=16, vocab_size=101,
                           pad_token_id=0, bos_token_id=0, eos_token_id=0,
                           decoder_start_token_id=0, attn_implementation=impl)
    torch.manual_seed(0)
    return tf.WhisperModel(cfg).eval(), {"input_features": torch.randn(1, 8, 16),
                                         "decoder_input_ids": torch.randint(0, 101, (1, 5))}


def _opt(impl: str) -> tuple[torch.nn.Module, dict]:
    cfg = tf.OPTConfig(hidden_size=32, ffn_dim=48, num_hidden_layers=1, num_attention_heads=4,
                       vocab_size=101, word_embed_proj_dim=32, attn_implementation=impl)
    torch.manual_seed(0)
    return tf.OPTModel(cfg).eval(), {"input_ids": torch.randint(0, 101, (1, 7))}


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("family", [_whisper, _opt], ids=["whisper", "opt"])
def test_prescaled_query_is_noted(family, impl: str) -> None:
    model, inputs = family(impl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = hjplug.inspect(model, inputs)
    blocks = [b for b in report.blocks if b.kind == "attention"]
    assert blocks and len(blocks) == (3 if family is _whisper else 1)
    s0 = 8 ** -0.5  # head dim 8
    for b in blocks:
        assert b.epsilon == pytest.approx(math.sqrt(8))
        assert b.hamiltonian.params["q_prescale"] == pytest.approx(s0)
        assert "q pre-scaled by s₀ = 0.3536" in b.notes, b.notes
        assert f"ε = {math.sqrt(8):.4g}" in b.notes
        assert "folded into the weights" not in b.notes


def test_unscaled_query_has_no_prescale_note() -> None:
    model = tf.LlamaModel(tf.LlamaConfig(hidden_size=32, intermediate_size=48,
                                         num_hidden_layers=1, num_attention_heads=4,
                                         num_key_value_heads=2, vocab_size=101,
                                         attn_implementation="eager")).eval()
    report = hjplug.inspect(model, {"input_ids": torch.randint(0, 101, (1, 6))})
    (b,) = [b for b in report.blocks if b.kind == "attention"]
    assert "q_prescale" not in b.hamiltonian.params and "pre-scaled" not in b.notes
