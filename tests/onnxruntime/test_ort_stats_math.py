"""The statistics nodes alone (no export): log-partition and entropy over kept keys, masked keys
removed (finfo.min masks and −∞ alike), empty rows LSE = −∞ and H = 0; opsets 13, 17 and 20."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hjplug.integrations.onnxruntime.stats import removal_threshold, stats_nodes


def _model(opset: int) -> onnx.ModelProto:
    nodes = stats_nodes("z", "lse", "ent", opset, removal_threshold("float32"))
    graph = helper.make_graph(
        nodes, "stats", [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 4, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3, 4]) for n in ("lse", "ent")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _reference(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = z > -1e30  # removed: ≤ −10³⁰ (finfo.min masks, scaled or not) and −∞
    zz = np.where(keep, z.astype(np.float64), -np.inf)
    lse = np.full(z.shape[:-1], -np.inf)
    ent = np.zeros(z.shape[:-1])
    for idx in np.ndindex(*z.shape[:-1]):
        row = zz[idx][keep[idx]]
        if row.size:
            m = row.max()
            lse[idx] = m + np.log(np.exp(row - m).sum())
            p = np.exp(row - lse[idx])
            ent[idx] = -(p * np.log(p)).sum()
    return lse, ent


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_stats_nodes_match_reference(opset: int, seed: int) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((2, 3, 4, 6)) * 4).astype(np.float32)
    fmin = np.finfo(np.float32).min
    z[0, 0, 1, 3:] = fmin  # padding mask (finfo.min) on some keys
    z[0, 1, 2, :2] = -np.inf  # SDPA-style −∞
    z[1, 2, 0, :] = fmin  # a row with no kept key
    z[1, 2, 3, :] = -np.inf
    z[1, 0, 0, 1:] = fmin + 5.0  # one kept key: H = 0, LSE = that score
    sess = ort.InferenceSession(_model(opset).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    lse, ent = sess.run(["lse", "ent"], {"z": z})
    ref_lse, ref_ent = _reference(z)
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite)
    assert np.all(lse[~finite] == -np.inf) and np.all(ent[~finite] == 0.0)
    np.testing.assert_allclose(lse[finite], ref_lse[finite], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ent, ref_ent, rtol=1e-4, atol=1e-5)
    assert ent[1, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert lse[1, 0, 0] == pytest.approx(z[1, 0, 0, 0], abs=1e-5)
    # a uniform row over 6 kept keys has H = log 6 (masked keys are never counted)
    assert np.all(ent <= np.log(6) + 1e-5)
