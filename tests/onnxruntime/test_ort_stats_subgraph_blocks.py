"""Statistics outputs on a file whose attention sits inside an If branch: `rewrite` now wraps it
inside the branch by default; `add_stats` (which leaves calls inside bodies and their functions
as written, see stats_bodies) still yields a
valid model that ONNX Runtime runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx

from hjplug.integrations.onnxruntime.sessions import run, session
from hjplug.integrations.onnxruntime.stats import add_stats, removal_threshold
from hjplug.passes.onnx import rewrite

sys.path.insert(0, str(Path(__file__).parents[1] / "onnx"))
from test_onnx_subgraph_blocks import S, _if_model


def test_stats_on_a_file_with_attention_in_an_if_branch(tmp_path: Path) -> None:
    src, dst = _if_model(tmp_path / "if.onnx"), tmp_path / "if.hj.onnx"
    report = rewrite(src, dst)
    assert [b.kind for b in report.blocks] == ["attention"]
    m = onnx.load(str(dst))
    add_stats(m, removal_threshold())
    onnx.checker.check_model(m, full_check=True)
    path = tmp_path / "stats.onnx"
    onnx.save(m, str(path))
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(S).astype(np.float32) for n in "QKV"}
    out = run(session(path), {**feeds, "C": np.array(True)})
    assert out["Y"].shape == tuple(S)
