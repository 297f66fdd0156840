"""Experiment building blocks against independent evaluations (numpy, closed forms)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hjplug.layers import LSELayer
from hjplug.paper import exp2_recovery as e2
from hjplug.paper import exp3_quadrature as e3
from hjplug.paper import exp5_phase as e5
from hjplug.paper import exp6_folds as e6
from hjplug.paper._common import RunConfig

F64 = torch.float64


def _continuum_1d(x: float, n: int = 400_001) -> float:
    """−log((1/4)∫_{−2}^{2} exp(−(|y| + (x − y)²/4)) dy) by numpy's trapezoid rule (ε = t = 1)."""
    y = np.linspace(-2.0, 2.0, n)
    return -math.log(np.trapezoid(np.exp(-(np.abs(y) + (x - y) ** 2 / 4)), y) / 4.0)


def test_quadrature_reference_matches_numpy_trapezoid() -> None:
    x = torch.tensor([[-1.3], [0.0], [0.4], [1.5]], dtype=F64)
    ref = e3.reference(x, 1, 8, 8)
    expected = torch.tensor([_continuum_1d(float(v)) for v in x[:, 0]], dtype=F64)
    assert torch.allclose(ref, expected, atol=1e-9, rtol=0)


def test_grid_layer_is_the_equal_weight_quadrature() -> None:
    x = torch.tensor([[0.3, -0.7], [1.2, 1.1]], dtype=F64)
    layer = e3.grid_layer(2, 5)
    axis = np.linspace(-2, 2, 5)
    yy = np.array([(a, b) for a in axis for b in axis])  # [25, 2]
    for xi, got in zip(x.numpy(), e3.layer_solution(layer, x).tolist(), strict=True):
        c = np.linalg.norm(yy, axis=1) + ((xi - yy) ** 2).sum(1) / 4
        assert abs(got - (-math.log(np.exp(-c).mean()))) < 1e-12


def test_recovery_deviation_is_zero_on_g_star_and_shift_sized_off_it() -> None:
    x, target, y_true, g_true = e2.problem()
    exact = LSELayer.from_atoms(y_true, g_true, 1.0, eps=0.1)
    assert e2.pi_weighted_deviation(exact, x)[0] < 1e-14
    shifted = LSELayer.from_atoms(y_true, g_true + 0.3, 1.0, eps=0.1)
    dev, pi_bar = e2.pi_weighted_deviation(shifted, x)
    assert abs(dev - 0.3) < 1e-12 and abs(float(pi_bar.sum()) - 1.0) < 1e-12
    # the target is the Hopf–Lax value: at x = 0 the nearest atoms are ±2/7 with g = 2/7
    assert abs(float(target[199] + target[200]) / 2 - (0.0 - (2 / 7 + (2 / 7) ** 2 / 4))) < 1e-3


def test_phase_boundary_point_ties_the_two_clusters() -> None:
    y, g = e5.cluster_atoms(RunConfig(True, 0, Path(".")))
    xb = e5.boundary_point(y, g).numpy()
    cost = g.numpy() + ((xb - y.numpy()) ** 2).sum(1) / 4
    assert abs(cost[:8].min() - cost[8:].min()) < 1e-12
    assert abs(xb[0] - xb[1]) == 0.0
    for k in (0, 1):  # the cluster point is the member atom nearest the centre
        a = e5.central_atom(y, k).numpy()
        members = y.numpy()[8 * k:8 * (k + 1)]
        centre = np.array([(-1.0, -1.0), (1.0, 1.0)][k])
        assert np.allclose(a, members[np.argmin(((members - centre) ** 2).sum(1))])


def test_phase_crossing_interpolates_in_log_eps() -> None:
    eps = torch.tensor([0.01, 0.1, 1.0], dtype=F64)
    assert abs(e5.crossing(eps, torch.tensor([0.0, 0.4, 0.6], dtype=F64)) - 10**-0.5) < 1e-12
    assert math.isnan(e5.crossing(eps, torch.tensor([0.0, 0.1, 0.2], dtype=F64)))


def test_dense_grid_extrema_on_hand_made_landscapes() -> None:
    # 3 well-separated atoms at small ε: basin at the middle atom, ridges between neighbours
    y = torch.tensor([[-2.0], [0.0], [2.0]], dtype=F64)
    from hjplug import math as hm

    W, b = hm.lse_from_atoms(y, torch.zeros(3, dtype=F64), 0.5)
    assert e6.grid_extrema_1d(W, b, 0.1) == (1, 2)
    assert e6.grid_extrema_1d(W, b, 50.0) == (0, 1)  # wave regime: a single hump
    # 2-D: a square of 4 atoms plus one in the centre → a basin at the centre atom that merges
    y2 = torch.tensor([[-0.6, -0.6], [-0.6, 0.6], [0.6, -0.6], [0.6, 0.6], [0.0, 0.0]],
                      dtype=F64)
    W2, b2 = hm.lse_from_atoms(y2, torch.zeros(5, dtype=F64), 1.0)
    from hjplug.landscape import Slice2D

    square = Slice2D((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.5, 1.5, -1.5, 1.5))
    assert e6.grid_minima_2d(W2, b2, 0.05, square, n=101) == 1
    assert e6.grid_minima_2d(W2, b2, 1.0, square, n=101) == 0
    rect = e6.cluster_slice(y2, 21)  # diagonal frame around the atoms, margin 0.5
    corners = e6.slice_points(rect, 2).numpy()  # [4, 2]
    assert np.allclose(np.abs(corners @ np.array([1.0, 1.0])) / np.sqrt(2), 0.6 * np.sqrt(2) + 0.5)


def test_split_bracket_separates_close_drops() -> None:
    def count(e: float) -> int:  # two basins lost at ε = 0.5000 and 0.5003
        return 2 - (e >= 0.5) - (e >= 0.5003)

    pieces = e6._split_bracket(count, 0.45, 0.56)
    assert len(pieces) == 2
    assert pieces[0][0] < 0.5 <= pieces[0][1] and pieces[1][0] < 0.5003 <= pieces[1][1]
