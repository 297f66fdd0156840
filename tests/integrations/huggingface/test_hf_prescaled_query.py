"""Families that pre-scale their queries (OPT, BART, …: q = q_proj(x)·s₀, attention called with
scaling = 1.0): the recorded ε is the block record's ε₀ = 1/s₀ in every backend (it was 1.0),
value = ε·lse, and the statistics still equal the stock eager model's attention weights."""

from __future__ import annotations

import warnings

import pytest
import torch

import hjplug
import hjplug.integrations.huggingface as hf

tf = pytest.importorskip("transformers")


def _opt() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    cfg = tf.OPTConfig(hidden_size=32, ffn_dim=48, num_hidden_layers=2, num_attention_heads=4,
                       vocab_size=101, word_embed_proj_dim=32, attn_implementation="eager")
    return tf.OPTForCausalLM(cfg).eval(), torch.randint(0, 101, (2, 7))


def _eager_entropy(model: torch.nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        att = model(ids, output_attentions=True).attentions  # π [B, H, S, S] per layer
    return [-(p.double() * p.double().clamp_min(1e-300).log()).sum(-1) for p in att]


@pytest.mark.parametrize("backend", ["stats", "kernel"])
@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_recorded_epsilon_is_the_block_records(backend: str, lam: float) -> None:
    model, ids = _opt()
    want_h = _eager_entropy(model, ids) if lam == 1.0 else None
    with torch.no_grad():
        ref = model(ids).logits
    hm = hf.enable(model)
    eps0 = hf.specs(hm)[0].epsilon
    assert eps0[0] == pytest.approx(8 ** 0.5)  # head dim 8: s₀ = 8^-½
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad(), hjplug.instrument.deform(hm, lam), hjplug.instrument(
                hm, stats=("entropy", "lse"), backend=backend) as rec:
            out = hm(ids).logits
    if lam == 1.0:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    for layer in range(2):
        key = f"layers.{layer}.attn"
        eps = rec[f"{key}.epsilon"]
        torch.testing.assert_close(eps.double(), lam * torch.tensor(eps0, dtype=torch.float64),
                                   rtol=1e-6, atol=0)
        value, lse = rec[f"{key}.value"], rec[f"{key}.lse"]
        torch.testing.assert_close(value, eps.view(1, -1, 1) * lse, rtol=1e-6, atol=1e-6)
        if want_h is not None:
            torch.testing.assert_close(rec[f"{key}.entropy"].double(), want_h[layer],
                                       rtol=0, atol=2e-5)


def test_unscaled_families_are_untouched() -> None:
    from hjplug.integrations.huggingface.attention_math import prescaled_query

    class Mod(torch.nn.Module):
        scaling = 0.125

    assert prescaled_query(Mod(), 1.0) == 0.125  # OPT / BART style
    assert prescaled_query(Mod(), 0.125) is None  # scaling passed to the call (Llama style)
    assert prescaled_query(torch.nn.Module(), 1.0) is None  # no own scaling (T5 passes 1.0)
    Mod.scaling = 1.0
    assert prescaled_query(Mod(), 1.0) is None
