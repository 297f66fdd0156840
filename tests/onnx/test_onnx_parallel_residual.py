"""Parallel residual blocks x + F₁(x) + F₂(x) (GPT-NeoX `use_parallel_residual`, GPT-J) read as
the FX rule `residual` reads them: one residual step whose F names both branches, notes saying
so, the add that sums the branches part of the block (wrapped with it, no "independent operands"
near-miss), structural; RoPE's own adds are no candidates. Hand-built graph (fast) and tiny
Hugging Face GPT-NeoX / GPT-J exported with dynamo (slow) against the FX pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx_helpers import calls, check_rewritten
from onnx_models import _init, _model, _vi
from test_onnx_ssm import _scoped

from hjplug.passes.onnx import inspect_onnx, rewrite

SHAPE = [2, 3, 8]


def _parallel(second_learned: bool = True) -> onnx.ModelProto:
    """Y = X + attn(X) + mlp(X) in module 'layer' (branches 'layer.attn', 'layer.mlp'); with
    `second_learned=False` the second branch is Relu(X) (no learned op: not parallel)."""
    rng = np.random.default_rng(0)
    inits = [_init(f"W{k}", rng.standard_normal((8, 8)) * 0.3) for k in range(3)]
    attn = [_scoped(h.make_node("MatMul", ["X", "W0"], ["a"], name="attn_out"), "layer.attn")]
    if second_learned:
        mlp = [_scoped(h.make_node("MatMul", ["X", "W1"], ["m1"], name="fc_in"), "layer.mlp"),
               _scoped(h.make_node("Relu", ["m1"], ["m2"], name="act"), "layer.mlp"),
               _scoped(h.make_node("MatMul", ["m2", "W2"], ["m"], name="fc_out"), "layer.mlp")]
    else:
        mlp = [_scoped(h.make_node("Relu", ["X"], ["m"], name="act"), "layer.mlp")]
    nodes = [*attn, *mlp,
             _scoped(h.make_node("Add", ["m", "a"], ["f"], name="branch_sum"), "layer"),
             _scoped(h.make_node("Add", ["f", "X"], ["Y"], name="residual"), "layer")]
    return _model(nodes, [_vi("X", SHAPE)], [_vi("Y", SHAPE)], inits, opset=18)


def test_parallel_residual_is_one_step_naming_both_branches(tmp_path: Path) -> None:
    src, dst = tmp_path / "par.onnx", tmp_path / "par.hj.onnx"
    onnx.save(_parallel(), str(src))
    report = rewrite(src, dst)
    [res] = report.blocks
    assert (res.kind, res.path, res.exactness, res.epsilon) == ("residual", "layer",
                                                                 "structural", 0.0)
    assert res.hamiltonian.params == {"F": "layer.mlp + layer.attn"}  # the sum's operand order
    assert "parallel residual: F(x) = F₁(x) + F₂(x)" in res.notes
    assert res.evidence[:2] == ("onnx.Add", "onnx.MatMul")
    assert not report.near_misses  # the branch sum is part of F, not an independent add
    [call] = calls(dst)
    assert call.op_type == "HJResidualStep"
    [fn] = onnx.load(str(dst)).functions
    assert [n.op_type for n in fn.node] == ["Add", "Add"]  # branch sum + skip add
    rest = [n.name for n in onnx.load(str(dst)).graph.node if n.domain != "hjplug"]
    assert rest == ["attn_out", "fc_in", "act", "fc_out"]
    again = inspect_onnx(dst)  # read back from the call's metadata
    assert [(b.path, b.hamiltonian.params, b.notes) for b in again.blocks] == [
        (res.path, res.hamiltonian.params, res.notes)]
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    check_rewritten(src, dst, {"X": x}, atol=0.0)


def test_a_branch_without_a_learned_op_is_no_parallel_residual(tmp_path: Path) -> None:
    """x + (W·x + relu(x)): a residual whose F is the learned branch's; the sum of a learned
    and an elementwise branch stays a near-miss, as in FX."""
    src = tmp_path / "m.onnx"
    onnx.save(_parallel(second_learned=False), str(src))
    report = inspect_onnx(src)
    [res] = report.blocks
    assert "parallel" not in res.notes and res.hamiltonian.params == {"F": "layer.attn"}
    [miss] = report.near_misses
    assert miss.node == "branch_sum" and "independent operands" in miss.reason


def _hf(family: str):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if family == "gpt_neox":
        return tf.GPTNeoXModel(tf.GPTNeoXConfig(
            num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64,
            vocab_size=97, max_position_embeddings=64, rotary_pct=0.25,
            use_parallel_residual=True, attn_implementation="eager")).eval()
    return tf.GPTJModel(tf.GPTJConfig(n_layer=2, n_embd=32, n_head=4, vocab_size=97,
                                      n_positions=64, rotary_dim=4,
                                      attn_implementation="eager")).eval()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt_neox", "gptj"])
def test_tiny_hf_parallel_residual_matches_fx(tmp_path: Path, family: str) -> None:
    import torch

    import hjplug

    model = _hf(family)
    ids = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(0))
    kwargs = {"input_ids": ids, "use_cache": False}
    with torch.no_grad():
        prog = torch.onnx.export(model, (), kwargs=kwargs, dynamo=True, verbose=False)
    src, dst = tmp_path / "m.onnx", tmp_path / "m.hj.onnx"
    prog.save(str(src))
    report = rewrite(src, dst)
    fx = hjplug.inspect(model, kwargs)
    res = [b for b in report.blocks if b.kind == "residual"]
    fx_res = [b for b in fx.blocks if b.kind == "residual"]
    assert [b.path for b in res] == [b.path for b in fx_res] and len(res) == 2
    for b, f in zip(res, fx_res, strict=True):
        assert (b.exactness, b.epsilon, b.time_step) == (f.exactness, f.epsilon, f.time_step)
        assert "parallel residual" in b.notes and "parallel residual" in f.notes
        assert b.evidence[-1] == f.evidence[-1]  # the layer class
        if family == "gptj":
            assert b.hamiltonian.params == f.hamiltonian.params  # '….attn + ….mlp'
        else:  # FX names the eval-mode dropouts after the branches; the export drops them
            layer = b.path
            assert b.hamiltonian.params == {"F": f"{layer}.mlp + {layer}.attention"}
            assert f.hamiltonian.params == {
                "F": f"{layer}.post_mlp_dropout + {layer}.post_attention_dropout"}
    assert report.kinds().get("attention") == fx.kinds().get("attention") == 2
    assert not [m for m in report.near_misses if m.rule == "residual"
                and "independent operands" in m.reason]  # no branch sum, no RoPE add
    assert [c.op_type for c in calls(dst)].count("HJResidualStep") == 2
    check_rewritten(src, dst, {"input_ids": ids.numpy()}, atol=1e-5)
