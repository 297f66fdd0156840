"""Explicit-path statistics of a converted model (stats that need π: weights, curvature) and the
FX sweep read the step's logits z, where a float mask leaves finfo.min stand-ins (T5's causal
decoder mask): those keys are removed atoms, not visible ones — k_i and the means over k_i ≥ 2
rows match the kernel path and eager fp64."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import transformers as tf

import hjplug

B, S, H = 2, 5, 4


def _t5() -> tuple[tf.T5ForConditionalGeneration, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    cfg = tf.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=H, vocab_size=101,
                      decoder_start_token_id=0, pad_token_id=0)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 101, (B, S), generator=g)
    return tf.T5ForConditionalGeneration(cfg).eval(), {"input_ids": ids,
                                                        "decoder_input_ids": ids.flip(-1)}


@pytest.mark.parametrize("stats", [("entropy",), ("entropy", "weights")],
                         ids=["kernel", "explicit"])
def test_decoder_keys_and_entropy_match_eager(stats: tuple[str, ...]) -> None:
    model, inputs = _t5()
    twin = copy.deepcopy(model).double()
    twin.set_attn_implementation("eager")
    with torch.no_grad():
        p = twin(**inputs, output_attentions=True).decoder_attentions[0]  # [B, H, S, S]
    want_k = torch.arange(1, S + 1).expand(B, H, S)  # causal: query i sees i + 1 keys
    ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
    hj = hjplug.convert(model, inputs)
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as rec:
        hj(**inputs)
    assert torch.equal(rec["layers.1.attn.keys"], want_k)
    assert (rec["layers.1.attn.entropy"].double() - ent).abs().max() < 1e-5
    s = rec.summary()[H]  # layers.1.attn head 0
    assert s.rows == B * (S - 1)
    sw = hjplug.sweep(hj, inputs, [1.0], layers=1, folds=False)
    for h in range(H):
        want = float(ent[:, h, 1:].mean())  # rows with k ≥ 2
        assert math.isclose(float(sw.entropy[0, 1, h]), want, rel_tol=1e-4, abs_tol=1e-5)
