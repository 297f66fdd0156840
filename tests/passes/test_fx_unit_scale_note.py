"""T5 (no 1/√d: folded into its weights at training) reads ε = 1 in both attention
implementations, and both records say why; the converted model matches the original."""

from __future__ import annotations

import pytest
import torch

import hjplug

tf = pytest.importorskip("transformers")


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_t5_unit_scale_is_explained(impl: str) -> None:
    cfg = tf.T5Config(num_layers=1, num_decoder_layers=1, d_model=32, d_kv=8, num_heads=4,
                      d_ff=64, vocab_size=97, decoder_start_token_id=0)
    cfg._attn_implementation = impl
    torch.manual_seed(0)
    model = tf.T5Model(cfg).eval()
    ids = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "decoder_input_ids": ids}
    report = hjplug.inspect(model, inputs)
    blocks = [b for b in report.blocks if b.kind == "attention"]
    assert len(blocks) == 3
    for b in blocks:
        assert b.epsilon == 1.0
        assert "ε = 1; any 1/√d folded into the weights" in b.notes, b.notes
    with torch.no_grad():
        ref = model(**inputs, use_cache=False).last_hidden_state
        assert torch.equal(hjplug.convert(model, inputs)(**inputs).last_hidden_state, ref)
