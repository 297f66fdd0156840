"""hjplug.sweep: entropy per head over λ, the fixed-input monotonicity check (and that it can
fail), folds (deterministic), progress, restoration of the model, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from instr_models import bert, gpt2, hook_snapshot

import hjplug
from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument._tap import AttentionCall
from hjplug.instrument.sweep import EntropyMonotonicityWarning

SCALES = torch.logspace(-1, 1, 7)


def test_sweep_entropy_matches_instrumented_runs_and_is_checked() -> None:
    model, inputs = gpt2()
    # the "hjplug" entry of transformers' AttentionInterface is process-global and stays
    # registered once used (idempotent); register it first so that the snapshot compares the
    # model's own state and catches a tap wrapper left installed
    hjplug.integrations.huggingface.register()
    before = hook_snapshot(model)
    sw = hjplug.sweep(model, inputs, SCALES, layers=[0], heads=[1, 2], folds=False,
                      progress=False)
    assert sw.entropy.shape == (7, 2, 4) and sw.ok and sw.checked > 0
    assert sw.layers == (0,) and sw.heads == (1, 2)
    # entry s equals an instrumented forward under the same deformation
    with torch.no_grad(), hjplug.instrument.deform(model, float(SCALES[2]), layers=[0],
                                                   heads=[1, 2]), \
            hjplug.instrument(model, stats=("entropy",)) as rec:
        model(**inputs)
    for h in range(4):
        s = next(x for x in rec.summary() if x.name == "layers.0.attn" and x.head == h)
        assert sw.entropy[2, 0, h] == pytest.approx(s.mean_entropy, rel=1e-6)
    # chosen heads of the first deformed layer see fixed inputs: entropy rises with λ
    assert bool((sw.entropy[1:, 0, 1:3] >= sw.entropy[:-1, 0, 1:3] - 1e-6).all())
    assert torch.allclose(sw.epsilon[:, 0, 1], SCALES.double() * math.sqrt(8))
    assert torch.allclose(sw.epsilon[:, 0, 0], torch.full((7,), math.sqrt(8), dtype=torch.float64))
    assert hook_snapshot(model) == before


def test_monotonicity_violation_is_reported_as_a_bug(monkeypatch) -> None:
    model, inputs = bert()
    real = AttentionCall.gibbs

    def broken(self, lam=None):  # a probe that loses entropy: what a buggy kernel would do
        p, lse, ent, keys = real(self, lam)
        return p, lse, ent - 0.01, keys
    monkeypatch.setattr(AttentionCall, "gibbs", broken)
    with pytest.warns(EntropyMonotonicityWarning, match="bug"):
        sw = hjplug.sweep(model, inputs, [0.5, 1.0, 2.0], layers=0, folds=False, progress=False)
    assert not sw.ok and len(sw.violations) > 0
    v = sw.violations[0]
    assert v.layer == 0 and v.scale_lo == 0.5 and v.scale_hi == 1.0 and v.entropy_hi < v.entropy_lo
    with pytest.raises(HJPlugError, match="bug"):
        hjplug.sweep(model, inputs, [0.5, 1.0], layers=0, folds=False, strict=True,
                     progress=False)


def test_folds_deterministic_and_progress() -> None:
    model, inputs = bert()
    calls: list[tuple[int, int]] = []
    sw1 = hjplug.sweep(model, inputs, torch.logspace(-1.5, 0.5, 9), layers=[0], heads=[0],
                       progress=lambda i, n: calls.append((i, n)))
    sw2 = hjplug.sweep(model, inputs, torch.logspace(-1.5, 0.5, 9), layers=[0], heads=[0],
                       progress=False)
    assert calls == [(i, 9) for i in range(1, 10)]
    assert sw1.fold_scan is not None and "layers.0.attn head 0" in sw1.fold_source
    assert sw1.folds == sw2.folds
    assert sw1.fold_scan.n_minima == sw2.fold_scan.n_minima
    assert sw1.fold_scan.monotone_violations == 0
    for f in sw1.folds:
        assert f.minima_after < f.minima_before and f.eps_lo < f.eps < f.eps_hi


def test_sweep_folds_match_the_landscape_on_the_head_atoms() -> None:
    """The sweep's fold scan is scan_folds on (keys, query path) of that head."""
    from hjplug.instrument.sweep import fold_inputs, fold_scan
    from hjplug.landscape import Path1D, scan_folds

    g = torch.Generator().manual_seed(3)
    keys = torch.randn(6, 2, generator=g, dtype=torch.float64) * 2
    queries = torch.randn(4, 2, generator=g, dtype=torch.float64)
    vis = torch.ones(4, 6, dtype=torch.bool)
    vis[0, 5] = False
    K, qa, qb, ia, ib = fold_inputs(keys, queries, vis, None)
    assert (ia, ib) == (0, 3) and K.shape == (5, 2)
    eps = [0.05 * 1.25**i for i in range(20)]
    ours = fold_scan(K, qa, qb, eps)
    ref = scan_folds(keys[:5], torch.zeros(5, dtype=torch.float64), eps,
                     Path1D(tuple(queries[0].tolist()), tuple(queries[3].tolist())))
    assert ours.folds == ref.folds and ours.n_minima == ref.n_minima


@pytest.mark.parametrize("scales", [[0.5, 0.0, 1.0], [-1.0], [float("nan"), 1.0], [],
                                    [float("inf")]])
def test_bad_scales(scales) -> None:
    model, inputs = bert()
    with pytest.raises(InvalidArgumentError, match="scales"):
        hjplug.sweep(model, inputs, scales, folds=False, progress=False)


def test_bad_layers_heads() -> None:
    model, inputs = bert()
    before = hook_snapshot(model)
    with pytest.raises(InvalidArgumentError, match=r"layers.*\[0, 2\)"):
        hjplug.sweep(model, inputs, [1.0], layers=[5], progress=False)
    with pytest.raises(InvalidArgumentError, match=r"heads.*\[0, 4\)"):
        hjplug.sweep(model, inputs, [1.0], heads=[4], progress=False)
    with pytest.raises(InvalidArgumentError, match="fold_head"):
        hjplug.sweep(model, inputs, [1.0, 2.0], fold_head=(0, 9), progress=False)
    assert hook_snapshot(model) == before
