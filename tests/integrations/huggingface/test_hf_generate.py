"""Greedy generation with a KV cache: identical tokens to the unmodified model (20 new tokens)."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import TINY

import hjplug.integrations.huggingface as hf


@pytest.mark.parametrize("mode", ["fast", "stats"])
@pytest.mark.parametrize("name", ["llama", "gpt2", "qwen3", "mistral"])
def test_greedy_generate_matches(name: str, mode: str) -> None:
    ref, inputs = TINY[name]("sdpa")  # left-padded batch of 3; GQA for llama/qwen3/mistral
    model = hf.enable(ref)
    kw = dict(max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0,
              eos_token_id=None)
    with torch.no_grad():
        want = ref.generate(**inputs, **kw)
        calls: list[hf.AttentionStats] = []
        if mode == "stats":
            with hf.record(model, calls.append):
                got = model.generate(**inputs, **kw)
        else:
            got = model.generate(**inputs, **kw)
    assert want.shape[1] == inputs["input_ids"].shape[1] + 20
    assert torch.equal(got, want)
    if mode == "stats":  # the prefill, then one single-query call per new token, per layer
        layers = len(hf.specs(model))
        assert len(calls) == 20 * layers
        decode = [c for c in calls if c.entropy.shape[-1] == 1]
        assert len(decode) == 19 * layers
        seq = inputs["input_ids"].shape[1]
        # k_i grows by one key per step; Mistral's window (4) caps it
        last_keys = decode[-1].keys[2, 0, 0].item()
        assert last_keys == (4 if name == "mistral" else seq + 19)


@pytest.mark.parametrize(("name", "impl", "extra"), [
    ("llama", "sdpa", {"cache_implementation": "static"}),  # empty static-cache slots cropped
    ("generic", "eager", {}),  # Gemma-2: soft-capped, sliding window (eager path)
])
def test_greedy_generate_static_cache_and_softcap(name: str, impl: str,
                                                  extra: dict[str, str]) -> None:
    ref, inputs = TINY[name](impl)
    model = hf.enable(ref)
    kw = dict(max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0,
              eos_token_id=None, **extra)
    seen: list[hf.AttentionStats] = []
    with torch.no_grad():
        want = ref.generate(**inputs, **kw)
        with hf.record(model, seen.append):
            got = model.generate(**inputs, **kw)
    assert torch.equal(got, want)
    assert len(seen) == 20 * len(hf.specs(model))
