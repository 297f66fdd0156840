"""Tiny transformers models for the instrumentation tests (fp32, seeded, built in code).

Query/key weights are scaled so that heads are peaked (particle-like) as well as diffuse: with
random initialisation every head would be near-uniform and top-k orders would be ties.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers as tf

VOCAB = 97


def text_inputs(batch: int = 3, seq: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids and a padding mask: row 0 has 3 right-pad positions, row 1 has 1."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, seq - 3:] = 0
    if batch > 1:
        mask[1, seq - 1:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _sharpen(model: Any, names: tuple[str, ...], factor: float) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            if any(k in n for k in names) and p.dim() == 2:
                p.mul_(factor)


def bert(impl: str = "sdpa", seed: int = 0, sharpen: float = 4.0) -> tuple[Any, dict]:
    torch.manual_seed(seed)
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, vocab_size=VOCAB, max_position_embeddings=64)
    model = tf.BertModel(cfg).eval()
    _sharpen(model, ("query.weight", "key.weight"), sharpen)
    model.set_attn_implementation(impl)
    return model, text_inputs()


def gpt2(impl: str = "sdpa", seed: int = 0, sharpen: float = 3.0) -> tuple[Any, dict]:
    torch.manual_seed(seed)
    cfg = tf.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=64)
    model = tf.GPT2LMHeadModel(cfg).eval()
    _sharpen(model, ("c_attn.weight",), sharpen)
    model.set_attn_implementation(impl)
    return model, text_inputs()


def eager_twin(model: Any) -> Any:
    """An independent copy of `model` running transformers' eager attention."""
    import copy

    twin = copy.deepcopy(model)
    twin.set_attn_implementation("eager")
    return twin


def hook_snapshot(model: torch.nn.Module) -> dict[str, Any]:
    """Every hook dict, hjplug attribute and the attention implementation, for equality checks."""
    from transformers import AttentionInterface

    snap: dict[str, Any] = {"impl": model.config._attn_implementation,
                            "hjplug_fn": AttentionInterface._global_mapping.get("hjplug")}
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                     "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            d = getattr(m, attr, None)
            if d:
                snap[f"{name}:{attr}"] = tuple(d.keys())
        st = m.__dict__.get("_hjplug")
        if st is not None:
            snap[f"{name}:_hjplug"] = (tuple(st.recorders), tuple(st.topk), st.scale, st.keep)
        for attr in ("_hjplug", "hj_spec"):
            snap[f"{name}:has{attr}"] = attr in m.__dict__
    return snap
