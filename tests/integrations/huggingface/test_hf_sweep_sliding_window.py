"""hjplug.sweep with its default fold path on sliding-window models (Mistral, Gemma-2/3,
Starcoder2): the first and last queries of a sequence longer than twice the window share no
visible key, so the default path must pick two queries that do (it raised HJPlugError)."""

from __future__ import annotations

import torch
from hf_tiny import TINY

import hjplug
from hjplug.instrument.sweep import fold_inputs


def _band(Sq: int, window: int) -> torch.Tensor:
    """[Sq, Sq] bool: causal sliding window, query i sees keys i − window < j ≤ i."""
    i, j = torch.arange(Sq).unsqueeze(1), torch.arange(Sq).unsqueeze(0)
    return (j <= i) & (j > i - window)


def test_default_fold_queries_share_keys_in_a_window() -> None:
    vis = _band(11, 4)
    K, _, _, ia, ib = fold_inputs(torch.randn(11, 3), torch.randn(11, 3), vis, None)
    assert int((vis[ia] & vis[ib]).sum()) >= 2 and K.shape[0] == int((vis[ia] & vis[ib]).sum())
    assert (ia, ib) == (1, 3)  # q_1 and the last query sharing ≥ 2 of its keys


def test_default_fold_queries_unchanged_without_window() -> None:
    """Full causal attention: still the first and last queries with ≥ 2 visible keys."""
    _, _, _, ia, ib = fold_inputs(torch.randn(9, 3), torch.randn(9, 3), _band(9, 9), None)
    assert (ia, ib) == (1, 8)


def test_sweep_default_folds_on_mistral_window() -> None:
    model, inputs = TINY["mistral"]("sdpa")  # window 4 < 11 tokens
    sw = hjplug.sweep(model, inputs, scales=torch.logspace(-1, 0.5, 4), fixed_inputs=False)
    assert sw.fold_scan is not None and "path q_" in sw.fold_source
    assert not sw.violations
