"""Bad input to the public API gets one clear HJPlugError (what, where, what to do), and the
user's model is never harmed: found by trying to break the promises from the outside."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import hjplug

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _Tied(nn.Module):
    """Tied weights, a float and an integer buffer, BatchNorm running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        self.qkv = nn.Linear(16, 48)
        self.head = nn.Linear(16, 20, bias=False)
        self.head.weight = self.emb.weight
        self.norm = nn.BatchNorm1d(16)
        self.register_buffer("offset", torch.full((16,), 0.25))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        q, k, v = (t.unflatten(-1, (2, 8)).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + y.transpose(1, 2).flatten(2) + self.offset
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.head(x).log_softmax(-1)


@pytest.mark.parametrize("training", [False, True])
def test_convert_leaves_a_tied_buffered_model_untouched(training: bool) -> None:
    torch.manual_seed(0)
    model = _Tied().train(training)
    ids = torch.randint(0, 20, (2, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        ref = model(ids)
    model.train(training)
    hj = hjplug.convert(model, (ids,))
    hj(ids)  # a training-mode forward of the copy must not move the original's statistics
    assert model.training is training and "forward" not in vars(model)
    assert before.keys() == model.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    mine = {t.data_ptr() for t in [*model.parameters(), *model.buffers()]}
    assert not mine & {t.data_ptr() for t in [*hj.parameters(), *hj.buffers()]}
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids), ref, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [3, 2.5, b"model", [torch.zeros(2)]])
def test_inspect_of_something_that_is_no_model_says_what_it_takes(bad: object) -> None:
    with pytest.raises(hjplug.HJPlugError, match=r"hjplug.inspect: argument 'model' must be .*"
                       r"nn\.Module.*\.onnx"):
        hjplug.inspect(bad)  # type: ignore[arg-type]


def test_inplace_with_example_inputs_on_a_hf_model_names_the_real_conflict() -> None:
    tf = pytest.importorskip("transformers")
    cfg = tf.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=24, vocab_size=30, max_position_embeddings=16)
    model = tf.BertModel(cfg).eval()
    ids = torch.randint(0, 30, (1, 4))
    with pytest.raises(hjplug.HJPlugError) as err:
        hjplug.convert(model, {"input_ids": ids}, inplace=True)
    msg = str(err.value)
    assert "exists only for Hugging Face models" not in msg  # it *is* one
    assert "example_inputs" in msg and "inplace=True" in msg


def test_deform_of_a_plain_module_says_convert_it_first() -> None:
    with pytest.raises(hjplug.HJPlugError) as err:
        hjplug.deform(nn.Linear(2, 2), 0.5)
    msg = str(err.value)
    assert "Linear" in msg and "hjplug.convert" in msg
    assert "huggingface.enable" not in msg  # enable() cannot take a Linear


def _enabled_bert() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    tf = pytest.importorskip("transformers")
    cfg = tf.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=24, vocab_size=30, max_position_embeddings=16)
    torch.manual_seed(0)
    model = hjplug.convert(tf.BertModel(cfg).eval())
    return model, {"input_ids": torch.randint(0, 30, (1, 4))}


@pytest.mark.parametrize("scale", [None, object(), "x", float("nan"), -1.0,
                                   torch.zeros(2, 2)])
def test_deform_refuses_a_bad_scale_with_one_clear_message(scale: object) -> None:
    model, inputs = _enabled_bert()
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
    with pytest.raises(hjplug.InvalidArgumentError, match="argument 'scale' must be"):
        hjplug.deform(model, scale)  # type: ignore[arg-type]
    with torch.no_grad():
        assert torch.equal(model(**inputs).last_hidden_state, ref)


def test_deform_takes_a_scalar_tensor_like_a_float() -> None:
    model, inputs = _enabled_bert()
    with torch.no_grad():
        ref = model(**inputs).last_hidden_state
        with hjplug.deform(model, 0.5):
            half = model(**inputs).last_hidden_state
        with hjplug.deform(model, torch.tensor(0.5)):
            torch.testing.assert_close(model(**inputs).last_hidden_state, half)
        assert torch.equal(model(**inputs).last_hidden_state, ref)
