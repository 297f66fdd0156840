"""Softmax(Q·Kᵀ·scale + mask)·V chains from a dynamo export, every variant in one model."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx_helpers import calls, check_rewritten, meta
from onnx_models import ATTN_VARIANTS

from hjplug.passes.onnx import inspect_onnx, rewrite
from hjplug.report import InspectReport


@pytest.fixture(scope="module")
def stack(exported, tmp_path_factory):
    src = exported("attn_stack")
    dst = tmp_path_factory.mktemp("rw") / "stack.hj.onnx"
    return src, dst, rewrite(src, dst)


def _feeds():
    rng = np.random.default_rng(0)
    mask = np.zeros((2, 1, 5, 5), np.float32)
    mask[1, :, :, 3:] = -1e4  # padding: keys 3, 4 of batch 1 masked (Add and masked_fill)
    return {"x": rng.standard_normal((2, 5, 16)).astype(np.float32), "mask": mask}


def test_every_variant_is_one_attention_block_with_its_epsilon(stack):
    _, _, report = stack
    att = {b.path: b for b in report.blocks if b.kind == "attention"}
    assert len(att) == len(ATTN_VARIANTS)
    for name, *_, eps in ATTN_VARIANTS:
        block = att[f"blocks.{name}"]
        assert block.epsilon == pytest.approx(eps, rel=1e-6), name
        assert block.exactness == "exact"
        assert block.hamiltonian.params["d_head"] == 8
        assert "onnx.Softmax" in block.evidence and "onnx.MatMul" in block.evidence
    assert att["blocks.mul_fill_late"].evidence.count("onnx.Where") == 1
    assert "ε = √d_head" in att["blocks.div_after_late"].notes
    assert report.counts["attention"] == len(ATTN_VARIANTS)


def test_residual_adds_around_each_attention(stack):
    _, _, report = stack
    res = [b for b in report.blocks if b.kind == "residual"]
    assert len(res) == len(ATTN_VARIANTS)
    assert all(b.epsilon == 0.0 and b.time_step == 1.0 for b in res)
    assert report.near_misses == ()


def test_rewritten_model_checks_and_matches_ort(stack):
    src, dst, _ = stack
    parity = check_rewritten(src, dst, _feeds())
    assert parity.max_abs <= 1e-6
    model = onnx.load(str(dst))
    softmax_left = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert softmax_left == []
    assert {o.domain: o.version for o in model.opset_import}["hjplug"] == 1
    bodies = sorted((f.name, f.overload) for f in model.functions)
    assert bodies == [("HJAttentionStep", str(k)) for k in range(6)] + [("HJResidualStep", "0")]


def test_call_metadata(stack):
    _, dst, _ = stack
    att = [meta(n) for n in calls(dst) if n.op_type == "HJAttentionStep"]
    assert len(att) == len(ATTN_VARIANTS)
    by_path = {m["hjplug.path"]: m for m in att}
    m = by_path["blocks.mul_before_pre"]
    assert json.loads(m["hjplug.epsilon"]) == pytest.approx(4.0)
    assert m["hjplug.kind"] == "attention" and m["hjplug.exactness"] == "exact"
    assert "module: blocks.mul_before_pre (Attn)" in m["hjplug.source"]
    assert "node_softmax" in m["hjplug.source"]


def test_model_metadata_carries_version_and_report(stack):
    import hjplug

    _, dst, report = stack
    props = {p.key: p.value for p in onnx.load(str(dst)).metadata_props}
    assert props["hjplug.version"] == hjplug.__version__
    stored = InspectReport.from_json(props["hjplug.report"])
    assert stored.blocks == report.blocks


def test_inspect_of_rewritten_file_gives_the_same_blocks(stack):
    src, dst, report = stack
    before, after = inspect_onnx(src), inspect_onnx(dst)
    assert before.blocks == report.blocks
    assert [(b.path, b.kind, b.epsilon) for b in after.blocks] == [
        (b.path, b.kind, b.epsilon) for b in before.blocks]
    assert after.counts["hjplug_call"] == len(before.blocks)


def test_rewrite_is_idempotent(stack, tmp_path):
    _, dst, report = stack
    again = rewrite(dst, tmp_path / "again.onnx")
    assert again.blocks == report.blocks
    model = onnx.load(str(tmp_path / "again.onnx"))
    assert len(model.functions) == len(onnx.load(str(dst)).functions)


def test_epsilon_is_one_over_scale(stack):
    _, _, report = stack
    for b in report.blocks:
        if b.kind == "attention":
            assert b.epsilon == pytest.approx(1.0 / b.hamiltonian.params["scale"])
    assert math.isclose(report.blocks[0].epsilon, math.sqrt(8), rel_tol=1e-6)


def test_ort_optimizes_both_models_to_the_same_graph(stack, tmp_path):
    """ORT inlines the hjplug functions before its fusions: the fully optimised graphs have the
    same ops, so the rewrite costs no run time (the latency budget of issue 7)."""
    from collections import Counter

    import onnxruntime as ort

    src, dst, _ = stack
    ops = []
    for tag, path in (("plain", src), ("hj", dst)):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(tmp_path / f"{tag}.opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath).graph
        ops.append(Counter(f"{n.domain}:{n.op_type}" for n in graph.node))
    assert ops[0] == ops[1]
    assert not any(k.startswith("hjplug:") for k in ops[1])
