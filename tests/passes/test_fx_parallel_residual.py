"""Parallel residual blocks (GPT-NeoX, GPT-J: x + attn(ln₁x) + mlp(ln₂x)): one residual step per
layer whose update F names both branches, and no "independent operands" near-miss for the add
that sums the two branches (it is part of F); outputs are unchanged."""

from __future__ import annotations

import pytest
import torch

import hjplug

tf = pytest.importorskip("transformers")


def _neox() -> torch.nn.Module:
    return tf.GPTNeoXModel(tf.GPTNeoXConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
        vocab_size=97, max_position_embeddings=64, rotary_pct=0.25,
        attn_implementation="eager"))


def _gptj() -> torch.nn.Module:
    return tf.GPTJModel(tf.GPTJConfig(n_layer=2, n_embd=32, n_head=4, vocab_size=97,
                                      n_positions=64, rotary_dim=4,
                                      attn_implementation="eager"))


@pytest.mark.parametrize("make", [_neox, _gptj], ids=["gpt_neox", "gptj"])
def test_parallel_residual_names_both_branches(make) -> None:
    torch.manual_seed(0)
    model = make().eval()
    ids = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(0))
    report = hjplug.inspect(model, {"input_ids": ids})
    res = [b for b in report.blocks if b.kind == "residual"]
    assert len(res) == 2, res
    for b in res:
        assert "parallel" in b.notes and " + " in str(b.hamiltonian.params["F"]), b
    assert not [m for m in report.near_misses if m.rule == "residual"
                and "independent" in m.reason and m.path in {b.path for b in res}]
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).last_hidden_state
        out = hjplug.convert(model, {"input_ids": ids})(input_ids=ids).last_hidden_state
    assert torch.equal(out, ref)
