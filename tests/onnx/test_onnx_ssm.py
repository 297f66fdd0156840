"""Rule `ssm`: a hand-built selective scan (Δ = softplus, A = −exp(A_log), Ā = exp(ΔA), two
unrolled steps) grouped by name scope into one block; near-misses (an exp of a non-parameter, an
exp(parameter) not negated); and the tiny Hugging Face Mamba through the dynamo exporter."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper
from onnx_helpers import calls, check_rewritten
from onnx_models import _init, _model, _vi

from hjplug.passes.onnx import analyse, rewrite
from hjplug.passes.onnx.rules import SSM

B, T_, D, N = 2, 2, 4, 3


def _scoped(node: onnx.NodeProto, scope: str) -> onnx.NodeProto:
    """Give `node` the dynamo exporter's name-scope metadata (module `scope`)."""
    scopes = ["", scope, node.name] if scope else ["", node.name]
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(scopes))
    return node


def scan_graph(decay: str = "traced") -> onnx.ModelProto:
    """y = out(Σ_n h_T) with h_t = Ā_t ⊙ h_{t−1} + x_t, Ā = exp(softplus(DT) ⊗ A), in module
    'mixer' (the projection 'out' is a child module). `decay`: 'traced' (A = −exp(A_log)),
    'folded' (A a constant < 0), 'input' (A = −exp(graph input): not a parameter),
    'positive' (A = exp(A_log), not negated)."""
    rng = np.random.default_rng(0)
    a_log = np.log(np.arange(1, N + 1, dtype=np.float32))[None, :].repeat(D, 0)  # (D, N)
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    inits = [i64("ax_last", [-1]), i64("t0", 0), i64("t1", 1),
             _init("W_out", rng.standard_normal((D, D)) * 0.3)]
    inputs = [_vi("X", [B, T_, D]), _vi("DT", [B, T_, D])]
    nodes = []
    if decay == "folded":
        inits.append(_init("A", -np.exp(a_log)))
    else:
        if decay == "input":
            inputs.append(_vi("A_log", [D, N]))
        else:
            inits.append(_init("A_log", a_log))
        nodes.append(h.make_node("Exp", ["A_log"], ["A" if decay == "positive" else "eA"],
                                 name="exp_alog"))
        if decay != "positive":
            nodes.append(h.make_node("Neg", ["eA"], ["A"], name="neg"))
    nodes += [
        h.make_node("Softplus", ["DT"], ["delta"], name="softplus"),
        h.make_node("Unsqueeze", ["delta", "ax_last"], ["d4"], name="unsq_d"),  # (B, T, D, 1)
        h.make_node("Mul", ["d4", "A"], ["dA"], name="mul_dA"),  # (B, T, D, N)
        h.make_node("Exp", ["dA"], ["Abar"], name="zoh"),
        h.make_node("Unsqueeze", ["X", "ax_last"], ["x4"], name="unsq_x"),  # (B, T, D, 1)
        h.make_node("Gather", ["x4", "t0"], ["x0"], axis=1, name="sel_x0"),
        h.make_node("Gather", ["x4", "t1"], ["x1"], axis=1, name="sel_x1"),
        h.make_node("Gather", ["Abar", "t0"], ["a0"], axis=1, name="sel_a0"),
        h.make_node("Gather", ["Abar", "t1"], ["a1"], axis=1, name="sel_a1"),
        h.make_node("Mul", ["a0", "x0"], ["h1"], name="step0"),  # h_{−1} = x_0 folded in
        h.make_node("Mul", ["a1", "h1"], ["ah1"], name="decay1"),
        h.make_node("Add", ["ah1", "x1"], ["h2"], name="update1"),
        h.make_node("ReduceSum", ["h2", "ax_last"], ["y"], keepdims=0, name="readout"),
        h.make_node("MatMul", ["y", "W_out"], ["Y"], name="out_proj"),
    ]
    for n in nodes:
        _scoped(n, "mixer.out" if n.name == "out_proj" else "mixer")
    return _model(nodes, inputs, [_vi("Y", [B, D])], inits, opset=18)


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("decay", ["traced", "folded"])
def test_scan_is_one_wrapped_block(tmp_path, decay):
    src = _save(scan_graph(decay), tmp_path / "scan.onnx")
    report = rewrite(src, tmp_path / "scan.hj.onnx")
    ssm = [b for b in report.blocks if b.kind == "ssm"]
    assert len(ssm) == 1 and report.counts["ssm"] == 1
    b = ssm[0]
    assert b.path == "mixer" and b.epsilon == 0.0 and b.exactness == "structural"
    assert b.time_step == "Δ = softplus(·) per token and channel"
    assert b.hamiltonian.params == {"selective": True, "scan_steps": 1, "unrolled_steps": 2}
    assert {"onnx.Exp", "onnx.Softplus", "Δ=softplus", "Ā=exp(ΔA)=zoh"} <= set(b.evidence)
    assert ("A=−exp(A_log)" if decay == "traced" else "A=A") in b.evidence
    # the scan of module 'mixer' (all computed from Δ, A's ops included) is one call; the
    # inputs u_t (not computed from Δ) and the child module's projection stay out
    (call,) = calls(tmp_path / "scan.hj.onnx")
    assert call.op_type == "HJSSMStep"
    rest = [n.name for n in onnx.load(str(tmp_path / "scan.hj.onnx")).graph.node
            if n.domain != "hjplug"]
    assert rest == ["unsq_x", "sel_x0", "sel_x1", "out_proj"]
    assert not report.near_misses  # the state-update Add is claimed, not a residual near-miss
    parity = check_rewritten(src, tmp_path / "scan.hj.onnx", atol=0.0)
    assert parity.max_abs == 0.0


def test_exp_of_a_non_parameter_is_not_an_ssm():
    """A = −exp(A_log) with A_log a graph input: the same ops, but no learned decay."""
    _, rec = analyse(scan_graph("input"))
    assert not [m for m in rec.matches if m.spec.kind == "ssm"]
    (miss,) = [m for m in rec.near_misses if m.rule == "ssm"]
    assert miss.node == "zoh" and "not a learned decay" in miss.reason


def test_exp_of_a_parameter_not_negated_is_a_near_miss():
    _, rec = analyse(scan_graph("positive"))
    assert rec.counts["ssm"] == 0
    reasons = {m.node: m.reason for m in rec.near_misses if m.rule == "ssm"}
    assert reasons["exp_alog"].startswith("exp(parameter) not negated")
    assert "not a learned decay" in reasons["zoh"]


def test_rule_scan_skips_claimed_and_plain_exps():
    model = scan_graph("traced")
    index, _ = analyse(model)
    zoh = next(i for i, n in enumerate(index.nodes) if n.name == "zoh")
    assert SSM.scan(index, {zoh}) == []  # a claimed ZOH is left alone
    plain = _model([h.make_node("Exp", ["X"], ["Y"], name="exp")], [_vi("X", [2, 3])],
                   [_vi("Y", [2, 3])])
    assert analyse(plain)[1].counts["ssm"] == 0


@pytest.mark.slow
def test_tiny_mamba_export(tmp_path):
    """Dynamo export of the tiny Mamba: one SSM block per mixer at the FX pass's paths (the scan
    unrolled per step, −exp(A_log) folded into a constant), residuals as in FX, exact parity."""
    import torch
    import transformers as tf

    import hjplug

    torch.manual_seed(0)
    model = tf.MambaModel(tf.MambaConfig(vocab_size=99, hidden_size=32, state_size=4,
                                         num_hidden_layers=2, expand=2, conv_kernel=4)).eval()
    ids = torch.randint(1, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prog = torch.onnx.export(model, (), kwargs={"input_ids": ids, "use_cache": False},
                                 dynamo=True, verbose=False)
    src, dst = tmp_path / "mamba.onnx", tmp_path / "mamba.hj.onnx"
    prog.save(str(src))
    report = rewrite(src, dst)
    fx = hjplug.inspect(model, {"input_ids": ids})
    ssm = [b for b in report.blocks if b.kind == "ssm"]
    fx_ssm = [b for b in fx.blocks if b.kind == "ssm"]
    assert [b.path for b in ssm] == [b.path for b in fx_ssm] == ["layers.0.mixer",
                                                                 "layers.1.mixer"]
    for b, f in zip(ssm, fx_ssm, strict=True):
        assert (b.epsilon, b.time_step, b.exactness) == (f.epsilon, f.time_step, f.exactness)
        assert "onnx.Softplus" in b.evidence and "MambaMixer" in b.evidence
        assert b.hamiltonian.params["unrolled_steps"] == 7
    assert report.kinds().get("residual") == fx.kinds().get("residual") == 2
    assert "hjplug.HJSSMStep (1 body)" in " ".join(report.notes)  # both mixers share it
    check_rewritten(src, dst, {"input_ids": ids.numpy()}, atol=0.0)
