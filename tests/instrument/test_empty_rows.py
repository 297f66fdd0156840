"""Rows with no visible key (every key masked: left-padded decoder queries, a bool mask row of
False, −∞, or a finite finfo.min mask) have no Gibbs distribution: one record everywhere —
keys = 0, lse = log Σ_∅ = −∞, value = −∞, entropy and H/log k undefined (NaN), gap and curvature
NaN, top-k weight 0 / index −1, π = 0, *not* flagged as NaN rows and never averaged.

Eager transformers attention differs on purpose: its finite finfo.min mask leaves every key at
the same logit, so its π is uniform over all Sk (masked) keys; SDPA and hjplug output 0 there.
Every other row matches eager `output_attentions` in fp64."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import transformers as tf
from torch import nn

import hjplug
from hjplug.integrations.huggingface import enable, record
from hjplug.integrations.huggingface.attention import hjplug_attention_forward

STATS = ("entropy", "lse", "value", "topk", "gap", "curvature", "weights")


def _llama() -> tuple[Any, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=101,
                         max_position_embeddings=64)
    model = tf.LlamaForCausalLM(cfg).eval()
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[0, :3] = 0  # left padding: queries 0..2 of row 0 see no real key
    ids = torch.randint(3, 101, (2, 7), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "attention_mask": mask}


def _check_empty(rec: Any, prefix: str, empty: torch.Tensor, curvature: bool = True) -> None:
    """empty [B, H, Sq] bool: the rows with no visible key."""
    g = {n: rec[f"{prefix}.{n}"] for n in ("keys", "lse", "value", "entropy",
                                           "normalized_entropy", "nan", "topk_weights",
                                           "topk_indices", "gap", "curvature",
                                           "curvature_bound", "weights")}
    assert torch.equal(g["keys"] == 0, empty)
    assert torch.isneginf(g["lse"][empty]).all() and torch.isneginf(g["value"][empty]).all()
    for n in ("entropy", "normalized_entropy", "gap", "curvature", "curvature_bound"):
        assert torch.isnan(g[n][empty]).all(), n
        if curvature or not n.startswith("curvature"):  # curvature: NaN at ε = 0 (no 1/ε)
            assert not torch.isnan(g[n][~empty & (g["keys"] > 1)]).any(), n
    assert not g["nan"].any()
    assert (g["topk_weights"][empty] == 0).all() and (g["topk_indices"][empty] == -1).all()
    assert (g["weights"][empty] == 0).all()


@torch.no_grad()
def _eager(model: Any, inputs: dict[str, torch.Tensor], dtype: torch.dtype
           ) -> tuple[torch.Tensor, ...]:
    import copy

    twin = copy.deepcopy(model).to(dtype)
    twin.set_attn_implementation("eager")
    return twin(**inputs, output_attentions=True).attentions  # L × [B, H, Sq, Sk]


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)


@pytest.mark.parametrize("lam", [1.0, 0.0], ids=["viscous", "tropical"])
@pytest.mark.parametrize("backend", ["stats", "kernel"])
def test_hf_empty_rows_one_record(backend: str, lam: float) -> None:
    model, inputs = _llama()
    att32, att64 = _eager(model, inputs, torch.float32), _eager(model, inputs, torch.float64)
    with torch.no_grad(), hjplug.instrument(model, stats=STATS, backend=backend) as rec, \
            hjplug.instrument.deform(model, lam):
        model(**inputs)
    B, H, Sq, Sk = att32[0].shape
    empty = torch.zeros(B, H, Sq, dtype=torch.bool)
    empty[0, :, :3] = True
    for i, p in enumerate(att32):
        _check_empty(rec, f"layers.{i}.attn", empty, curvature=lam > 0)
        # eager fp32: its finite finfo.min mask gives π uniform over all Sk keys there
        torch.testing.assert_close(p[empty], torch.full_like(p[empty], 1.0 / Sk))
        if lam == 1.0:  # every other row: as eager
            got = rec[f"layers.{i}.attn.entropy"].double()
            assert (got[~empty] - _entropy(p.double())[~empty]).abs().max() < 1e-5
    # eager fp64: finfo(fp64).min becomes −∞ in its fp32 softmax: NaN rows (the −∞ case)
    assert torch.isnan(att64[0][empty]).all()
    if lam == 1.0:
        got = rec["layers.0.attn.entropy"].double()
        assert (got[~empty] - _entropy(att64[0])[~empty]).abs().max() < 1e-5
    heads = [s for s in rec.summary() if s.kind == "attention"]
    n_rows = int((~empty[:, 0] & (rec["layers.0.attn.keys"][:, 0] > 1)).sum())
    assert all(s.nan_rows == 0 and s.rows == n_rows for s in heads)
    assert all(math.isfinite(s.mean_entropy) for s in heads)


@pytest.mark.parametrize("form", ["finfo_min", "-inf", "bool"])
def test_hf_mask_forms_agree(form: str) -> None:
    """A row masked by finfo.min, by −∞ or by a bool False row: the same statistics, output 0."""
    model, _ = _llama()
    model = enable(model)
    mod = model.model.layers[0].self_attn
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 4, 3, 8, generator=g) for _ in range(3))
    keep = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    keep[..., 1, :] = False  # query 1: every key masked
    fill = {"finfo_min": torch.finfo(torch.float32).min, "-inf": float("-inf")}
    mask = keep if form == "bool" else torch.where(keep, 0.0, fill[form])
    got: list[Any] = []
    with torch.no_grad(), record(model, got.append, topk=2):
        out, _ = hjplug_attention_forward(mod, q, k, v, mask, scaling=8 ** -0.5)
    (st,) = got
    assert (out[:, 1] == 0).all() and (out[:, [0, 2]] != 0).any()
    assert (st.keys[..., 1] == 0).all() and torch.isneginf(st.lse[..., 1]).all()
    assert torch.isnan(st.entropy[..., 1]).all()
    assert torch.isnan(st.normalized_entropy[..., 1]).all()
    assert torch.isfinite(st.entropy[..., [0, 2]]).all()


class _SDPA(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                m: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)


@pytest.mark.parametrize("stats", [("entropy", "lse", "topk"), ("entropy", "lse", "weights")],
                         ids=["kernel", "explicit"])
def test_fx_empty_rows_one_record(stats: tuple[str, ...]) -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 4, 8, generator=g) for _ in range(3))
    m = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    m[1, :, 2] = False
    hj = hjplug.convert(_SDPA(), (q, k, v, m))
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as rec:
        hj(q, k, v, m)
    empty = (rec["layers.0.attn.keys"] == 0)
    assert empty.sum() == 2 and bool(empty[1, :, 2].all())
    assert torch.isnan(rec["layers.0.attn.entropy"][empty]).all()
    assert torch.isneginf(rec["layers.0.attn.lse"][empty]).all()
    assert not rec["layers.0.attn.nan"].any()
    assert rec.summary()[0].nan_rows == 0
