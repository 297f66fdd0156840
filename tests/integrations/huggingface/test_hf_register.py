"""Registration in AttentionInterface + AttentionMaskInterface, and the silent-mask regression."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import TINY, rel_err
from transformers import AttentionInterface, AttentionMaskInterface

import hjplug.integrations.huggingface as hf
from hjplug.errors import InvalidArgumentError
from hjplug.integrations.huggingface import switch


def test_register_fills_both_interfaces() -> None:
    hf.register()
    assert "hjplug" in AttentionInterface._global_mapping
    assert "hjplug" in AttentionMaskInterface._global_mapping
    assert "hjplug" in hf.valid_implementations()
    assert hf.is_registered()


def _padded_error(name: str, mode: str = "fast") -> float:
    """Relative logit error of the enabled model on left-padded rows (valid positions only)."""
    ref, inputs = TINY[name]("sdpa")
    model = hf.enable(ref, stats=(mode == "stats"))
    with torch.no_grad():
        want, got = ref(**inputs).logits, model(**inputs).logits
    return rel_err(got, want, inputs["attention_mask"].bool())


@pytest.mark.parametrize("mode", ["fast", "stats"])
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_missing_mask_registration_is_caught(name: str, mode: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the AttentionMaskInterface entry transformers builds no mask at all: padding (and
    with it the causal structure of padded batches) silently disappears. The padded parity check
    passes with the registration and fails without it."""
    assert _padded_error(name, mode) <= 1e-5
    # the regression: attention function registered, mask function not (enable re-registers)
    monkeypatch.setattr(switch, "register", lambda: None)
    monkeypatch.delitem(AttentionMaskInterface._global_mapping, "hjplug")
    assert _padded_error(name, mode) > 1e-3


@pytest.mark.parametrize("mode", ["fast", "stats"])
def test_causal_future_tokens_do_not_leak(mode: str) -> None:
    """Logits at positions ≤ t do not change when tokens after t change (padded batch)."""
    ref, inputs = TINY["llama"]("sdpa")
    model = hf.enable(ref, stats=(mode == "stats"))
    changed = dict(inputs)
    ids = inputs["input_ids"].clone()
    ids[:, 8:] = (ids[:, 8:] + 7) % 100 + 1
    changed["input_ids"] = ids
    with torch.no_grad():
        a, b = model(**inputs).logits, model(**changed).logits
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-6)
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-3)


def test_from_pretrained_with_hjplug_implementation(tmp_path: object) -> None:
    from transformers import AutoModelForCausalLM

    ref, inputs = TINY["qwen3"]("sdpa")
    ref.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="hjplug").eval()
    assert hf.is_enabled(model)
    assert len(hf.specs(model)) == 2
    got = []
    with torch.no_grad(), hf.record(model, got.append):
        out = model(**inputs).logits
        want = ref(**inputs).logits
    assert len(got) == 2
    assert rel_err(out, want, inputs["attention_mask"].bool()) <= 1e-5


def test_mismatched_implementation_string_lists_valid_ones() -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    with pytest.raises(InvalidArgumentError) as err:
        hf.disable(model, implementation="hjplg")
    msg = str(err.value)
    for name in ("'eager'", "'sdpa'", "'hjplug'", "hjplg"):
        assert name in msg
    assert hf.is_enabled(model)  # nothing changed
