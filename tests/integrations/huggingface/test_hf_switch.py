"""enable / disable: copies by default, in place on request, exact restore, clear refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import transformers as tf
from hf_tiny import TINY, text_inputs

import hjplug.integrations.huggingface as hf
from hjplug.errors import HJPlugError, InvalidArgumentError


def _out(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_default_returns_a_new_model_and_leaves_the_callers_alone() -> None:
    model, inputs = TINY["llama"]("sdpa")
    before = _out(model, inputs)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    enabled = hf.enable(model)
    assert enabled is not model and type(enabled) is type(model)
    assert model.config._attn_implementation == "sdpa" and not hf.is_enabled(model)
    assert not any(hasattr(m, "_hjplug") or hasattr(m, "hj_spec") for m in model.modules())
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert all(a.data_ptr() != b.data_ptr()
               for a, b in zip(model.parameters(), enabled.parameters(), strict=True))
    assert torch.equal(_out(model, inputs), before)
    assert hf.is_enabled(enabled)


def test_inplace_enables_the_given_model() -> None:
    model, _ = TINY["gpt2"]("sdpa")
    assert hf.enable(model, inplace=True) is model
    assert hf.is_enabled(model) and model.config._attn_implementation == "hjplug"


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_disable_restores_exactly(impl: str) -> None:
    model, inputs = TINY["mistral"](impl)
    before = _out(model, inputs)
    hf.enable(model, inplace=True, stats=True)
    with hf.deform(model, 0.5, layers=[0]), hf.record(model, lambda s: None):
        _out(model, inputs)
    hf.deform(model, 0.0, heads=[1])  # a persistent deformation is dropped by disable too
    assert hf.disable(model) is model
    assert model.config._attn_implementation == impl
    assert not any(hasattr(m, "_hjplug") or hasattr(m, "hj_spec") for m in model.modules())
    assert not hasattr(model, "_hjplug_original")
    assert torch.equal(_out(model, inputs), before)  # bitwise


def test_not_enabled_twice() -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    with pytest.raises(HJPlugError, match="already hjplug-enabled"):
        hf.enable(model)
    with pytest.raises(HJPlugError, match="already hjplug-enabled"):
        hf.enable(model, inplace=True)


def test_disable_of_a_plain_model_is_refused() -> None:
    with pytest.raises(HJPlugError, match="not hjplug-enabled"):
        hf.disable(TINY["llama"]("sdpa")[0])


def test_architecture_without_attention_interface_is_named() -> None:
    """Bloom computes attention in BloomAttention without AttentionInterface."""
    torch.manual_seed(0)
    bloom = tf.BloomForCausalLM(tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4,
                                               vocab_size=101)).eval()
    with pytest.raises(HJPlugError) as err:
        hf.enable(bloom)
    msg = str(err.value)
    assert "BloomAttention" in msg and "hjplug.convert(model, example_inputs)" in msg
    assert bloom.config._attn_implementation != "hjplug"


def test_non_transformers_module_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"hjplug\.convert\(model, example_inputs\)"):
        hf.enable(torch.nn.MultiheadAttention(8, 2))


def test_model_without_attention_is_refused() -> None:
    torch.manual_seed(0)
    mamba = tf.MambaForCausalLM(tf.MambaConfig(hidden_size=16, num_hidden_layers=1,
                                               vocab_size=101, state_size=4)).eval()
    with pytest.raises(HJPlugError, match="no module whose forward goes through"):
        hf.enable(mamba)


def test_statistics_and_recorders_need_an_enabled_model() -> None:
    model, _ = TINY["llama"]("sdpa")
    for call in (lambda: hf.specs(model), lambda: hf.deform(model, 0.5),
                 lambda: hf.record(model, print).__enter__()):
        with pytest.raises(HJPlugError, match="expected an hjplug-enabled model"):
            call()


def test_recorders_leave_nothing_behind_after_an_error() -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    seen: list[object] = []
    with pytest.raises(RuntimeError), hf.record(model, seen.append):
        model(**text_inputs())
        raise RuntimeError("boom")
    assert seen and all(m._hjplug.idle for m in model.modules() if hasattr(m, "_hjplug"))


def test_nested_recorders() -> None:
    model = hf.enable(TINY["llama"]("sdpa")[0])
    outer: list[object] = []
    inner: list[object] = []
    with torch.no_grad(), hf.record(model, outer.append):
        model(**text_inputs())
        with hf.record(model, inner.append):
            model(**text_inputs())
        model(**text_inputs())
    assert (len(outer), len(inner)) == (6, 2)


def test_import_is_light() -> None:
    code = ("import sys, hjplug.integrations.huggingface as h; h.FAMILIES; "
            "assert 'transformers' not in sys.modules, 'transformers imported'; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
