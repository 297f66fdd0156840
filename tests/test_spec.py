"""The block record: frozen, validated, lossless through JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hjplug import BlockKind, Exactness, Hamiltonian, HJSpec


def _attention_spec() -> HJSpec:
    return HJSpec(
        path="encoder.layer.3.attention.self",
        kind=BlockKind.ATTENTION,
        hamiltonian=Hamiltonian("H(p) = pᵀ Σ_h p", {"metric": "M_h = W_Q,h W_K,hᵀ", "heads": 12,
                                                     "biases": ["padding"]}),
        epsilon=(8.0,) * 12,
        time_step=None,
        exactness=Exactness.EXACT,
        evidence=("aten.scaled_dot_product_attention",),
        notes="weights exact; head mixture structural",
    )


def test_json_roundtrip_is_lossless() -> None:
    for spec in (
        _attention_spec(),
        HJSpec("layer.0", "residual", Hamiltonian("ℋ(x,p) = p·F(x)"), 0.0, 1.0, "structural",
               ("aten.add",)),
        HJSpec("rnn", "recurrent", Hamiltonian("gated Euler"), 1.0, "per-coordinate, from gates",
               "structural"),
    ):
        text = spec.to_json()
        assert json.loads(text)["kind"] == str(spec.kind)
        assert HJSpec.from_json(text) == spec


def test_records_are_frozen_and_validated() -> None:
    spec = _attention_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.path = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="'epsilon'"):
        HJSpec("a", "lse", Hamiltonian("|p|²"), -1.0, None, "exact")
    with pytest.raises(ValueError):
        HJSpec("a", "not-a-kind", Hamiltonian("|p|²"), 1.0, None, "exact")
    with pytest.raises(ValueError):
        HJSpec("a", "lse", Hamiltonian("|p|²"), 1.0, None, "approximately")
