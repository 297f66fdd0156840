"""The paper's ε* = N^{−1/d}·|q|·R of a head (hjplug.htmlreport.scale) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from hjplug.errors import HJPlugError
from hjplug.htmlreport.scale import paper_scale

F64 = torch.float64


def test_isotropic_square_by_hand() -> None:
    # keys (3±1, 3), (3, 3±1): centroid (3, 3), covariance diag(1/2, 1/2) → d = 1²/(1/2) = 2,
    # R = √(tr C) = 1, N = 4; q = (3, 4): |q| = 5.  ε* = 4^(−1/2)·5·1 = 2.5, λ* = 2.5/2.
    k = torch.tensor([[4.0, 3.0], [2.0, 3.0], [3.0, 4.0], [3.0, 2.0]], dtype=F64)
    q = torch.tensor([[3.0, 4.0]], dtype=F64)
    s = paper_scale(q, k, torch.ones(1, 4, dtype=torch.bool), eps0=2.0)
    assert (s.n_keys, s.rows) == (4.0, 1)
    assert s.dim == pytest.approx(2.0, rel=1e-12)
    assert s.radius == pytest.approx(1.0, rel=1e-12)
    assert s.q_norm == pytest.approx(5.0, rel=1e-12)
    assert s.eps_star == pytest.approx(2.5, rel=1e-12)
    assert s.lam_star == pytest.approx(1.25, rel=1e-12)


def test_anisotropic_cloud_by_hand() -> None:
    # keys (±2, 0), (0, ±1): σ² = (2, 1/2), tr = 5/2, Σσ⁴ = 17/4 → d = (25/4)/(17/4) = 25/17,
    # R = √(5/2); q = (0, 5).  ε* = 4^(−17/25)·5·√(5/2).
    k = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=F64)
    q = torch.tensor([[0.0, 5.0]], dtype=F64)
    s = paper_scale(q, k, torch.ones(1, 4, dtype=torch.bool), eps0=0.5)
    assert s.dim == pytest.approx(25 / 17, rel=1e-12)
    assert s.radius == pytest.approx(math.sqrt(2.5), rel=1e-12)
    expected = 4 ** (-17 / 25) * 5 * math.sqrt(2.5)
    assert s.eps_star == pytest.approx(expected, rel=1e-12)
    assert s.lam_star == pytest.approx(expected / 0.5, rel=1e-12)


def test_masks_rows_and_geometric_mean_by_hand() -> None:
    # query 0 sees the unit square's 4 keys (d = 2, R = 1): ε*₀ = 4^(−1/2)·|q₀| = 0.5·2 = 1.
    # query 1 sees (1, 0), (−1, 0), (0, 1): centroid (0, 1/3), C = diag(2/3, 2/9), tr = 8/9,
    # Σσ⁴ = 40/81 → d = 1.6, R = √(8/9); |q₁| = 3 → ε*₁ = 3^(−1/1.6)·3·√(8/9).
    # query 2 sees one key: no ε* (skipped). Aggregate: geometric mean of ε*₀ and ε*₁.
    k = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=F64)
    q = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], dtype=F64)
    vis = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    s = paper_scale(q, k, vis, eps0=1.0)
    e1 = 3 ** (-1 / 1.6) * 3 * math.sqrt(8 / 9)
    assert s.rows == 2
    assert s.eps_star == pytest.approx(math.sqrt(1.0 * e1), rel=1e-12)
    assert s.n_keys == pytest.approx(3.5) and s.dim == pytest.approx((2 + 1.6) / 2, rel=1e-12)
    assert s.q_norm == pytest.approx(2.5) and s.radius == pytest.approx((1 + math.sqrt(8 / 9)) / 2)
    # batch rows are pooled like queries
    b = paper_scale(torch.stack([q, q]), torch.stack([k, k]), torch.stack([vis, vis]), 1.0)
    assert b.rows == 4 and b.eps_star == pytest.approx(s.eps_star, rel=1e-12)


def test_convention_is_the_heat_kernel_form(seed: int) -> None:
    """softmax_j(q·k_j/ε) = softmax_j(−|q̂ − y_j|²/(2ε′) + g_j), y_j = (k_j − m)/R, ε′ = ε/(|q|R),
    g_j = |y_j|²/(2ε′): the reading behind ε′* = N^(−1/d)."""
    gen = torch.Generator().manual_seed(seed)
    k = 3 * torch.randn(9, 5, generator=gen, dtype=F64) + 2
    q = torch.randn(5, generator=gen, dtype=F64)
    eps = 0.7
    m = k.mean(0)
    R = float(((k - m) ** 2).sum(-1).mean().sqrt())
    y = (k - m) / R
    ep = eps / (float(q.norm()) * R)
    heat = -((q / q.norm() - y) ** 2).sum(-1) / (2 * ep) + (y**2).sum(-1) / (2 * ep)
    torch.testing.assert_close(torch.softmax(heat, 0), torch.softmax(k @ q / eps, 0))
    s = paper_scale(q[None], k, torch.ones(1, 9, dtype=torch.bool), eps)
    assert s.radius == pytest.approx(R, rel=1e-12)
    # at ε = ε*, the dimensionless viscosity is N^(−1/d)
    assert s.eps_star / (s.q_norm * s.radius) == pytest.approx(9 ** (-1 / s.dim), rel=1e-12)


def test_undefined_cases_raise() -> None:
    k = torch.ones(3, 2, dtype=F64)  # all keys equal: R = 0
    with pytest.raises(HJPlugError, match="nonzero radius"):
        paper_scale(torch.ones(1, 2, dtype=F64), k, torch.ones(1, 3, dtype=torch.bool), 1.0)
    with pytest.raises(HJPlugError, match="finite and > 0"):
        paper_scale(torch.ones(1, 2, dtype=F64), k, torch.ones(1, 3, dtype=torch.bool), 0.0)


def test_head_of_a_tiny_bert(tmp_path) -> None:
    import json

    from hjplug.api import load_model
    from hjplug.htmlreport.scale import head_paper_scale

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "intermediate_size": 37,
                               "vocab_size": 97}))
    loaded = load_model(cfg)
    s = head_paper_scale(loaded.model, loaded.inputs, 1, 3)
    ids = loaded.inputs["input_ids"]
    mask = loaded.inputs.get("attention_mask")
    assert s.eps0 == pytest.approx(math.sqrt(32 / 4))  # ε_h = √(head dim)
    assert s.rows == ids.numel()
    assert s.n_keys == pytest.approx(float(mask.sum(-1).double().mean()) if mask is not None
                                     else ids.shape[-1])
    assert 1 <= s.dim <= 8 and s.eps_star == pytest.approx(s.lam_star * s.eps0)
    with pytest.raises(HJPlugError, match="Hugging Face"):
        head_paper_scale(torch.nn.Linear(2, 2), None, 0, 0)
