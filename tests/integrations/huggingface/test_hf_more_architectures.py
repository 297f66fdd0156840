"""Architectures outside the family entries (generic entry): RoBERTa, DistilBERT, GPT-NeoX
(fused qkv, partial rotary), Phi (partial rotary), Gemma-3 (q/k norm, sliding window),
Starcoder2 (sliding window), BART (pre-scaled queries, cross attention), Whisper, CLIP text
(causal + padding). Logits equal the stock model with padding, in both statistics backends, the
model is untouched afterwards, and the first block's entropy equals the eager model's
π (fp64) on real queries; models without AttentionInterface are refused with the reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import transformers as tf
from hf_tiny import VOCAB, main_output, rel_err, text_inputs

import hjplug
from hjplug.errors import HJPlugError

_DEC = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128)
_S2S = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, vocab_size=VOCAB)
_ENC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            vocab_size=VOCAB)


def _s2s_inputs() -> dict[str, torch.Tensor]:
    inputs = text_inputs(pad_left=False)
    inputs["decoder_input_ids"] = text_inputs(seq=7, seed=1)["input_ids"]
    return inputs


BUILD: dict[str, tuple[Callable[[], Any], Callable[[], dict[str, torch.Tensor]]]] = {
    "roberta": (lambda: tf.RobertaModel(tf.RobertaConfig(**_ENC, pad_token_id=1)),
                lambda: text_inputs(pad_left=False)),
    "distilbert": (lambda: tf.DistilBertModel(tf.DistilBertConfig(
        dim=32, n_layers=2, n_heads=4, hidden_dim=37, vocab_size=VOCAB)),
        lambda: text_inputs(pad_left=False)),
    "gpt_neox": (lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
        vocab_size=VOCAB, rotary_pct=0.5)), text_inputs),
    "phi": (lambda: tf.PhiForCausalLM(tf.PhiConfig(**_DEC, partial_rotary_factor=0.5)),
            text_inputs),
    "gemma3": (lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(
        **_DEC, head_dim=8, sliding_window=4, query_pre_attn_scalar=16,
        final_logit_softcapping=None)), text_inputs),
    "starcoder2": (lambda: tf.Starcoder2ForCausalLM(tf.Starcoder2Config(**_DEC, sliding_window=4)),
                   text_inputs),
    "bart": (lambda: tf.BartForConditionalGeneration(tf.BartConfig(
        **_S2S, max_position_embeddings=64)), _s2s_inputs),
    "whisper": (lambda: tf.WhisperForConditionalGeneration(tf.WhisperConfig(
        **_S2S, num_mel_bins=8, max_source_positions=16, max_target_positions=32,
        decoder_start_token_id=1, pad_token_id=0)),
        lambda: {"input_features": torch.randn(2, 8, 32, generator=torch.Generator(
        ).manual_seed(3)), "decoder_input_ids": text_inputs(2, 7, 1)["input_ids"]}),
    "clip_text": (lambda: tf.CLIPTextModel(tf.CLIPTextConfig(**_ENC, max_position_embeddings=16)),
                  lambda: text_inputs(pad_left=False)),
}


def _model(name: str, impl: str) -> Any:
    torch.manual_seed(0)
    model = BUILD[name][0]().eval()
    model.set_attn_implementation(impl)
    return model


def _first_attention(out: Any) -> torch.Tensor:
    """π [B, H, Sq, Sk] of the first attention block that runs (encoder first)."""
    att = getattr(out, "encoder_attentions", None) or out.attentions
    return att[0]


@pytest.mark.parametrize("name", sorted(BUILD))
def test_parity_and_entropy(name: str) -> None:
    ref, inputs = _model(name, "sdpa"), BUILD[name][1]()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    mask = inputs.get("attention_mask")
    real = mask.bool() if mask is not None else None  # [B, S] real queries
    with torch.no_grad():
        want = main_output(ref(**inputs))
        p = _first_attention(_model(name, "eager")(**inputs, output_attentions=True)).double()
        for backend in ("stats", "kernel"):
            with hjplug.instrument(ref, stats=("entropy", "lse"), backend=backend) as rec:
                got = main_output(ref(**inputs))
            valid = real if "decoder_input_ids" not in inputs else None
            assert rel_err(got, want, valid) <= 1e-5, backend
            ent = rec.calls("layers.0.attn.entropy")[0].double()  # [B, H, Sq]
            want_h = -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)
            rows = torch.ones_like(ent, dtype=torch.bool) if real is None else (
                real[:, None, :].expand_as(ent) & (rec.calls("layers.0.attn.keys")[0] > 0))
            torch.testing.assert_close(ent[rows], want_h[rows], rtol=0, atol=2e-5)
        assert torch.equal(main_output(ref(**inputs)), want)  # stock forward afterwards
    assert ref.config._attn_implementation == "sdpa"
    assert all(torch.equal(v, state[k]) for k, v in ref.state_dict().items())
    assert not any(hasattr(m, "_hjplug") for m in ref.modules())


@pytest.mark.parametrize(("cls", "cfg"), [
    (tf.FalconForCausalLM, tf.FalconConfig(hidden_size=32, num_hidden_layers=1,
                                           num_attention_heads=4, vocab_size=VOCAB)),
    (tf.GPTNeoForCausalLM, tf.GPTNeoConfig(hidden_size=32, num_layers=1, num_heads=4,
                                           vocab_size=VOCAB, attention_types=[[["global"], 1]])),
])
def test_models_without_attention_interface_are_refused(cls: type, cfg: Any) -> None:
    model = cls(cfg).eval()
    impl = model.config._attn_implementation
    with pytest.raises(HJPlugError, match="without transformers' AttentionInterface"), \
            hjplug.instrument(model):
        pass
    assert model.config._attn_implementation == impl
    assert not any(hasattr(m, "_hjplug") for m in model.modules())
