"""A softmax over soft-capped attention scores (Gemma-2: z = c·tanh(q·kᵀ/(c√d)) + mask), which
the attention rule leaves, is not an exact readout of a linear layer with ε = 1: as in the FX
pass it is an `lse` block marked structural, whose notes say the logits are attention scores
(a product of two computed tensors, through Tanh). A real readout (logits = x·W, also with a
tied, transposed weight) stays exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper, numpy_helper

from hjplug.passes.onnx import inspect_onnx

S = [2, 2, 4, 8]
CAP = 50.0


def _capped(path: Path) -> Path:
    nodes = [helper.make_node("Transpose", ["K"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["Q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["s1"]),
             helper.make_node("Div", ["s1", "cap"], ["s2"]),
             helper.make_node("Tanh", ["s2"], ["s3"]),
             helper.make_node("Mul", ["s3", "cap"], ["s4"]),
             helper.make_node("Add", ["s4", "M"], ["z"]),
             helper.make_node("Softmax", ["z"], ["p"], axis=-1, name="sm"),
             helper.make_node("MatMul", ["p", "V"], ["Y"])]
    inits = [numpy_helper.from_array(np.array(8 ** -0.5, np.float32), "scale"),
             numpy_helper.from_array(np.array(CAP, np.float32), "cap")]
    ins = [helper.make_tensor_value_info(n, T.FLOAT, S) for n in "QKV"]
    ins.append(helper.make_tensor_value_info("M", T.FLOAT, [2, 1, 1, 4]))
    return _save(nodes, ins, [helper.make_tensor_value_info("Y", T.FLOAT, S)], inits, path)


def _tied_readout(path: Path) -> Path:
    """logits = h·Eᵀ with the embedding E (an initializer) transposed in the graph."""
    nodes = [helper.make_node("Transpose", ["E"], ["et"], perm=[1, 0]),
             helper.make_node("MatMul", ["X", "et"], ["z"]),
             helper.make_node("Softmax", ["z"], ["P"], axis=-1, name="readout")]
    e = numpy_helper.from_array(np.random.default_rng(0).standard_normal((11, 6))
                                .astype(np.float32), "E")
    return _save(nodes, [helper.make_tensor_value_info("X", T.FLOAT, [3, 6])],
                 [helper.make_tensor_value_info("P", T.FLOAT, [3, 11])], [e], path)


def _save(nodes, ins, outs, inits, path: Path) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", ins, outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_softcapped_scores_are_structural_not_a_readout(tmp_path: Path) -> None:
    [block] = inspect_onnx(_capped(tmp_path / "cap.onnx")).blocks
    assert block.kind == "lse" and block.exactness == "structural", block
    assert "attention scores" in block.notes and "onnx.Tanh" in block.notes, block.notes
    assert "not affine in the input" in block.hamiltonian.formula


def test_tied_readout_stays_exact(tmp_path: Path) -> None:
    [block] = inspect_onnx(_tied_readout(tmp_path / "tied.onnx")).blocks
    assert block.kind == "lse" and block.exactness == "exact" and block.epsilon == 1.0, block
    assert block.hamiltonian.params["atoms"] == 11
