"""Tiny transformers models built from configs in code (fp32, seeded), one per family entry.

TINY maps a family name (hjplug.integrations.huggingface.FAMILIES + "generic") to a builder
returning (model in eval mode with attn_implementation=reference, inputs dict). The reference
implementation is "sdpa" except for the generic entry's Gemma-2 (soft-capping: eager only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import transformers as tf

VOCAB = 101
Built = tuple[Any, dict[str, torch.Tensor]]


def text_inputs(batch: int = 3, seq: int = 11, seed: int = 0, pad_left: bool = True
                ) -> dict[str, torch.Tensor]:
    """Token ids with a padding mask: row 0 has 4 pad positions, row 1 has 2 (left or right)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row, n in ((0, 4), (1, 2)):
        if row < batch:
            mask[row, :n] = 0 if pad_left else 1
            if not pad_left:
                mask[row, seq - n:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _build(cls: type, cfg: Any, impl: str, seed: int) -> Any:
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    model.set_attn_implementation(impl)
    return model


_DEC = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128)


def gpt2(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=128)
    return _build(tf.GPT2LMHeadModel, cfg, impl, seed), text_inputs()


def bert(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, vocab_size=VOCAB)
    return _build(tf.BertModel, cfg, impl, seed), text_inputs(pad_left=False)


def llama(impl: str = "sdpa", seed: int = 0) -> Built:
    return _build(tf.LlamaForCausalLM, tf.LlamaConfig(**_DEC), impl, seed), text_inputs()


def mistral(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.MistralConfig(**_DEC, sliding_window=4)  # window < sequence: the window matters
    return _build(tf.MistralForCausalLM, cfg, impl, seed), text_inputs()


def qwen2(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.Qwen2Config(**_DEC, use_sliding_window=True, sliding_window=4, max_window_layers=1)
    return _build(tf.Qwen2ForCausalLM, cfg, impl, seed), text_inputs()


def qwen3(impl: str = "sdpa", seed: int = 0) -> Built:
    return _build(tf.Qwen3ForCausalLM, tf.Qwen3Config(**_DEC, head_dim=8), impl, seed), (
        text_inputs())


def t5(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, vocab_size=VOCAB,
                      decoder_start_token_id=0, pad_token_id=0)
    inputs = text_inputs(pad_left=False)
    inputs["decoder_input_ids"] = text_inputs(seq=7, seed=1)["input_ids"]
    return _build(tf.T5ForConditionalGeneration, cfg, impl, seed), inputs


def vit(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=37, num_channels=3)
    g = torch.Generator().manual_seed(2)
    return _build(tf.ViTModel, cfg, impl, seed), {"pixel_values": torch.randn(2, 3, 16, 16,
                                                                              generator=g)}


def jamba(impl: str = "sdpa", seed: int = 0) -> Built:
    cfg = tf.JambaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                         attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                         expert_layer_offset=1, num_experts=2, num_experts_per_tok=1,
                         mamba_d_state=4, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=4,
                         use_mamba_kernels=False)
    return _build(tf.JambaForCausalLM, cfg, impl, seed), text_inputs(pad_left=False)


def generic(impl: str = "eager", seed: int = 0) -> Built:
    """Gemma-2 (no family entry): soft-capped, sliding-window, GQA; reference = eager."""
    cfg = tf.Gemma2Config(**_DEC, head_dim=8, sliding_window=4, attn_logit_softcapping=20.0,
                          final_logit_softcapping=None, query_pre_attn_scalar=8)
    return _build(tf.Gemma2ForCausalLM, cfg, impl, seed), text_inputs()


TINY: dict[str, Callable[..., Built]] = {
    "gpt2": gpt2, "bert": bert, "llama": llama, "mistral": mistral, "qwen2": qwen2,
    "qwen3": qwen3, "t5": t5, "vit": vit, "jamba": jamba, "generic": generic,
}
REFERENCE_IMPL = {name: ("eager" if name == "generic" else "sdpa") for name in TINY}


def main_output(out: Any) -> torch.Tensor:
    """logits if the model has a head, else the last hidden state."""
    for name in ("logits", "last_hidden_state"):
        t = getattr(out, name, None)
        if t is not None:
            return t
    raise AssertionError(f"no logits / last_hidden_state in {type(out).__name__}")


def rel_err(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """max |a − b| / max |b| over valid positions (the scale of the reference)."""
    if valid is not None:
        a, b = a[valid], b[valid]
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
