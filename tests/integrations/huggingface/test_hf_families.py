"""Family entries: each one has a test; parity with the unmodified model; block records."""

from __future__ import annotations

import json

import pytest
import torch
from hf_tiny import REFERENCE_IMPL, TINY, main_output, rel_err

import hjplug.integrations.huggingface as hf
from hjplug.integrations.huggingface.blocks import attention_blocks
from hjplug.spec import Exactness, HJSpec

FAMILY_NAMES = [f.name for f in hf.FAMILIES] + [hf.GENERIC.name]


def test_every_registered_family_has_a_test() -> None:
    missing = sorted(set(FAMILY_NAMES) - set(TINY))
    assert not missing, f"families without a tiny model / test in hf_tiny.TINY: {missing}"
    extra = sorted(set(TINY) - set(FAMILY_NAMES))
    assert not extra, f"hf_tiny.TINY names families that are not registered: {extra}"


def test_issue_families_are_registered() -> None:
    want = {"gpt2", "bert", "llama", "mistral", "qwen2", "qwen3", "t5", "vit", "jamba"}
    assert want <= set(FAMILY_NAMES)


def _valid(inputs: dict[str, torch.Tensor], out: torch.Tensor) -> torch.Tensor | None:
    """Non-padded query positions (padded rows attend to nothing: their values are arbitrary)."""
    mask = inputs.get("attention_mask")
    if mask is None or "decoder_input_ids" in inputs or mask.shape != out.shape[:2]:
        return None
    return mask.bool()


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_modules_are_found(name: str) -> None:
    model, _ = TINY[name](REFERENCE_IMPL[name])
    fam = next(f for f in (*hf.FAMILIES, hf.GENERIC) if f.name == name)
    blocks = list(attention_blocks(model))
    assert blocks, f"{name}: no attention module found"
    assert {f.name for _, _, f in blocks} == {name}
    if fam.attention:
        assert {type(m).__name__ for _, m, _ in blocks} <= set(fam.attention)


@pytest.mark.parametrize("mode", ["fast", "stats"])
@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_logits_match_unmodified_model(name: str, mode: str) -> None:
    ref_model, inputs = TINY[name](REFERENCE_IMPL[name])
    model = hf.enable(ref_model, stats=(mode == "stats"))
    with torch.no_grad():
        want = main_output(ref_model(**inputs))
        got = main_output(model(**inputs))
    valid = _valid(inputs, want)
    assert rel_err(got, want, valid) <= 1e-5
    if mode == "fast" and REFERENCE_IMPL[name] == "sdpa":
        assert torch.equal(got, want)  # stats off: the stock SDPA call, bitwise
    if mode == "stats":
        last = hf.last_stats(model)
        assert all(s is not None for s in last)
        assert {s.backend for s in last if s} == ({"eager"} if name == "generic" else {"kernel"})


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_block_records(name: str) -> None:
    model = hf.enable(TINY[name](REFERENCE_IMPL[name])[0])
    recs = hf.specs(model)
    blocks = list(attention_blocks(model))
    assert [r.path for r in recs] == [p for p, _, _ in blocks]
    for rec, (_, mod, _) in zip(recs, blocks, strict=True):
        assert mod.hj_spec == rec
        heads = rec.hamiltonian.params["heads"]
        assert isinstance(rec.epsilon, tuple) and len(rec.epsilon) == heads
        assert rec.epsilon == pytest.approx([1.0 / mod.scaling] * heads)
        capped = rec.hamiltonian.params["softcap"] is not None
        assert capped == (name == "generic")
        assert rec.exactness is (Exactness.STRUCTURAL if capped else Exactness.EXACT)
        assert HJSpec.from_json(rec.to_json()) == rec
        json.dumps(rec.to_dict())


def test_sliding_window_is_recorded_and_matters() -> None:
    """Mistral's window (4 < sequence) is in the record and changes the logits."""
    ref, inputs = TINY["mistral"]("sdpa")
    model = hf.enable(ref)
    assert {r.hamiltonian.params["window"] for r in hf.specs(model)} == {4}
    wide, _ = TINY["mistral"]("sdpa")
    wide.config.sliding_window = None
    for layer in wide.model.layers:
        if hasattr(layer.self_attn, "sliding_window"):
            layer.self_attn.sliding_window = None
    with torch.no_grad():
        a, b = model(**inputs).logits, wide(**inputs).logits
    assert (a - b).abs().max() > 1e-4  # the window is effective in the enabled model
