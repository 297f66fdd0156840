"""Tiny Hugging Face models of each family (configs built in code, seeded) and their inputs:
batch 2 × sequence 7 with padding in the second sequence (pixels for ViT)."""

from __future__ import annotations

import math
from typing import Any

import torch

FAMILIES = ("gpt2", "bert", "llama", "qwen3", "vit", "mamba", "t5")
# expected attention steps and ε (= √d_head, T5: unscaled → 1) per family
EXPECTED: dict[str, tuple[int, float]] = {
    "gpt2": (2, math.sqrt(8)), "bert": (2, math.sqrt(8)), "llama": (2, math.sqrt(8)),
    "qwen3": (2, math.sqrt(8)), "vit": (2, math.sqrt(8)), "mamba": (0, 0.0),
    "t5": (6, 1.0),  # 2 encoder self, 2 decoder self, 2 cross
}


def build(family: str) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    small = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 37, "max_position_embeddings": 64}
    if family == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4,
                                                n_positions=64, bos_token_id=0,
                                                eos_token_id=0)).eval()
    if family == "bert":
        return tf.BertModel(tf.BertConfig(**small)).eval()
    if family == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**small, num_key_value_heads=2)).eval()
    if family == "qwen3":
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(**small, num_key_value_heads=2,
                                                  head_dim=8)).eval()
    if family == "vit":
        return tf.ViTModel(tf.ViTConfig(image_size=16, patch_size=4, num_channels=3,
                                        hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=37)).eval()
    if family == "mamba":
        return tf.MambaModel(tf.MambaConfig(vocab_size=99, hidden_size=32, state_size=4,
                                            num_hidden_layers=2, expand=2,
                                            conv_kernel=4)).eval()
    if family == "t5":
        return tf.T5Model(tf.T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                      num_decoder_layers=2, num_heads=4,
                                      relative_attention_num_buckets=8,
                                      decoder_start_token_id=0)).eval()
    raise ValueError(family)


def inputs(family: str, batch: int = 2, seq: int = 7, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    if family == "vit":
        return {"pixel_values": torch.randn(batch, 3, 16, 16, generator=g)}
    ids = torch.randint(1, 99, (batch, seq), generator=g)
    if family == "mamba":
        return {"input_ids": ids}
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq - 2:] = 0  # right padding in the last sequence
    out = {"input_ids": ids, "attention_mask": mask}
    if family == "t5":
        out["decoder_input_ids"] = torch.randint(1, 99, (batch, seq - 2), generator=g)
    return out


class TinyAttn(torch.nn.Module):
    """A plain (non-HF) pre-norm attention block with a residual: x + W_o softmax(qkᵀ/√d + m)v,
    positional inputs (x, mask) with mask additive (b, 1, 1, t)."""

    def __init__(self, d: int = 16, heads: int = 2, sdpa: bool = False) -> None:
        super().__init__()
        self.qkv, self.o, self.h = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d), heads
        self.sdpa = sdpa

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (y.view(b, t, self.h, d // self.h).transpose(1, 2)  # (b, h, t, dh)
                   for y in self.qkv(x).chunk(3, dim=-1))
        if self.sdpa:
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            s = q @ k.transpose(-1, -2) / math.sqrt(d // self.h) + mask  # (b, h, t, t)
            y = s.softmax(-1) @ v
        return x + self.o(y.transpose(1, 2).reshape(b, t, d))


def tiny_attn_inputs(batch: int, seq: int, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 100 + seq)
    mask = torch.zeros(batch, 1, 1, seq)
    if pad:
        mask[-1, ..., seq - pad:] = torch.finfo(torch.float32).min
    return torch.randn(batch, seq, 16, generator=g), mask
