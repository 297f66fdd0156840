"""The public API routes each kind of input to the right engine: HF-enabled models, .onnx files."""

from __future__ import annotations

import os

import pytest
import torch

import hjplug

os.environ.setdefault("HF_HUB_OFFLINE", "1")
tf = pytest.importorskip("transformers")


def _tiny_llama() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    cfg = tf.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                         max_position_embeddings=64)
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(cfg).eval()
    model.set_attn_implementation("sdpa")
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_convert_of_a_pretrained_model_stays_a_hf_model_and_leaves_the_original() -> None:
    from hjplug.integrations.huggingface import is_enabled

    model, inputs = _tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        ref = model(**inputs).logits
    hj = hjplug.convert(model)
    assert type(hj) is type(model) and hj is not model
    assert is_enabled(hj) and not is_enabled(model)
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(hj(**inputs).logits, ref, rtol=0, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    report = hjplug.inspect(hj)  # from the enabled modules' records: no capture
    assert report.capture == "attn_implementation='hjplug'"
    assert report.kinds() == {"attention": 2}
    eps = report.blocks[0].epsilon
    assert eps == pytest.approx(8**0.5) or eps == pytest.approx((8**0.5,) * 4)

    same = hjplug.convert(model, inplace=True)
    assert same is model and is_enabled(model)


def test_inplace_is_refused_on_the_fx_path() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Softplus())
    with pytest.raises(hjplug.HJPlugError, match="in-place conversion exists only for Hugging"):
        hjplug.convert(net, (torch.randn(2, 4),), inplace=True)


def test_inspect_of_an_onnx_path_uses_the_onnx_pass(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Div", ["Z", "temp"], ["zs"]),
        helper.make_node("ReduceLogSumExp", ["zs", "axes"], ["lse"], keepdims=0),
        helper.make_node("Mul", ["lse", "temp"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("Z", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "temp"),
         numpy_helper.from_array(np.array([-1], np.int64), "axes")],
    )
    path = tmp_path / "lse.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    report = hjplug.inspect(str(path))
    assert report.kinds() == {"lse": 1}
    assert report.blocks[0].epsilon == pytest.approx(0.5)
    assert callable(hjplug.onnx.rewrite)


def test_deform_routes_hf_models_to_the_integration() -> None:
    from hjplug.integrations.huggingface import Deformation

    model, _ = _tiny_llama()
    hj = hjplug.convert(model)
    with hjplug.deform(hj, 0.5) as d:
        assert isinstance(d, Deformation)


def test_deform_of_a_converted_model_is_persistent_or_scoped() -> None:
    torch.manual_seed(0)
    width = 8

    class Block(torch.nn.Module):  # two heads of width 4 reading the input directly
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = k = v = x.view(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)  # [B, h, S, 4]
            s = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # ε = 2
            return (s @ v).transpose(1, 2).reshape(x.shape)

    x = torch.randn(2, 5, width)
    hj = hjplug.convert(Block().eval(), (x,))
    (step,) = [s for s in hj.steps.values() if type(s).__name__ == "HJAttentionStep"]
    with torch.no_grad():
        base = hj(x)
        with hjplug.deform(hj, 0.25):
            assert step.epsilon == pytest.approx(0.5)
            assert not torch.allclose(hj(x), base)
        assert step.epsilon == pytest.approx(2.0)
        torch.testing.assert_close(hj(x), base, rtol=0, atol=0)
        d = hjplug.deform(hj, 0.0)  # persistent: hard-max until restored
        assert step.epsilon == 0.0
        d.restore()
        torch.testing.assert_close(hj(x), base, rtol=0, atol=0)
    with torch.no_grad(), hjplug.deform(hj, 0.5, heads=[0]):  # one ε per head
        assert step.epsilon == (1.0, 2.0)
        got = hj(x)
    torch.testing.assert_close(got[..., 4:], base[..., 4:], rtol=0, atol=1e-6)  # head 1 as is
    assert not torch.allclose(got[..., :4], base[..., :4])  # head 0 deformed
    assert step.epsilon == pytest.approx(2.0)
    with pytest.raises(ValueError, match="'heads'"):
        hjplug.deform(hj, 0.5, heads=[5])
    with pytest.raises(ValueError, match="'scale'"):
        hjplug.deform(hj, -1.0)
