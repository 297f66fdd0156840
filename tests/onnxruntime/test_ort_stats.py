"""The statistics outputs of the GPT-2 (causal) and BERT (bidirectional) exports against an
independent PyTorch computation: π from eager attention with output_attentions=True, scores
from hooks on the query/key projections; padded and future keys removed. ≤ 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from ort_models import inputs
from ort_reference import reference_stats

from hjplug.integrations.onnxruntime import session
from hjplug.integrations.onnxruntime.sessions import run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_stats_match_eager_output_attentions(exported, family: str) -> None:
    ex = exported(family)
    x = inputs(family, batch=3, seq=9, seed=2)
    x["attention_mask"][0, 3:] = 0  # heavy padding in another sequence too
    ref = reference_stats(ex.model, family, x)
    out = run(session(ex.result.path), x)
    assert {s.path for s in ex.result.stats} == set(ref)
    for s in ex.result.stats:
        lse, ent = ref[s.path]
        want = (lse if s.stat == "log_partition" else ent).numpy()
        got = out[s.name].astype(np.float64)
        assert got.shape == want.shape == (3, 4, 9)
        scale = max(1.0, float(np.max(np.abs(want))))
        assert np.max(np.abs(got - want)) <= 1e-4 * scale, (s.name, np.max(np.abs(got - want)))
    # the removed keys are not uniform atoms: sequence 0 sees 3 keys, so H ≤ log 3
    ent0 = out[next(s.name for s in ex.result.stats if s.stat == "entropy")][0]
    assert np.all(ent0 <= np.log(3) + 1e-5)
