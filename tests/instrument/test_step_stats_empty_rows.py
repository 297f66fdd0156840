"""Every statistics path of HJAttentionStep (the hj_attention kernel path, the explicit
matmul / softmax path, the tropical ε = 0 path, a replayed chain) reports a row with no visible
key the same way to its "stats" observers as the recorder does: k = 0, lse = −∞, entropy NaN
(undefined: no π), never 0 (the kernels' fill value). Visible rows: H = lse − E_π[z], fp64."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import hjplug

D = 8


class _SDPA(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                m: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)


class _Fused(nn.Module):
    """[B·H, S, d] with a fused additive bias (baddbmm): a replayed chain."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                b: torch.Tensor) -> torch.Tensor:
        s = torch.baddbmm(b, q, k.transpose(1, 2), beta=1.0, alpha=D ** -0.5)
        return torch.bmm(torch.softmax(s, -1), v)


def _entropy64(z: torch.Tensor) -> torch.Tensor:
    """fp64 H(softmax(z)) per row; NaN where every key is removed."""
    z = z.double()
    empty = ~(z > float("-inf")).any(-1)
    zs = z.masked_fill(empty.unsqueeze(-1), 0.0)
    logp = torch.log_softmax(zs, -1)
    ent = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)
    return ent.masked_fill(empty, math.nan)


def _sdpa_case(path: str) -> tuple[nn.Module, tuple[Any, ...], torch.Tensor]:
    """(converted model, inputs, fp64 entropy [B, H, Sq]) — query 2 of batch 1 sees no key."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 4, D, generator=g) for _ in range(3))
    m = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    m[1, :, 2] = False
    hj = hjplug.convert(_SDPA(), (q, k, v, m))
    z = (q.double() @ k.double().transpose(-1, -2) / math.sqrt(D)).masked_fill(~m, float("-inf"))
    if path == "tropical":  # π = one-hot on the argmax (no ties here): H = 0 on visible rows
        ref = torch.zeros(2, 2, 4, dtype=torch.float64).masked_fill(~m.any(-1), math.nan)
        return hj, (q, k, v, m), ref
    return hj, (q, k, v, m), _entropy64(z)


def _fused_case() -> tuple[nn.Module, tuple[Any, ...], torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(4, 4, D, generator=g) for _ in range(3))
    b = torch.randn(4, 4, 4, generator=g)
    b[3, 2] = float("-inf")  # slice 3, query 2: no visible key
    hj = hjplug.convert(_Fused(), (q, k, v, b))
    z = q.double() @ k.double().transpose(-1, -2) * D ** -0.5 + b.double()
    return hj, (q, k, v, b), _entropy64(z).unsqueeze(0)  # [1, B·H, Sq] as the step reports


def _run(hj: nn.Module, args: tuple[Any, ...], setup: Callable[[Any], Any]) -> Any:
    (step,) = hj.steps.values()
    got: list[Any] = []
    handles = [step.observe_stats(lambda _s, _p, st: got.append(st), topk=2)]
    extra = setup(step)
    if extra is not None:
        handles.append(extra)
    try:
        with torch.no_grad():
            hj(*args)
    finally:
        for h in handles:
            h.remove()
        step.reset_epsilon()
    (st,) = got
    return st


def _scores(step: Any) -> Any:
    return step.observe("scores", lambda *_: None)


def _tropical(step: Any) -> None:
    step.epsilon = 0.0


@pytest.mark.parametrize(("path", "setup", "backend"), [
    ("kernel", lambda s: None, "reference"),
    ("explicit", _scores, "explicit"),
    ("tropical", _tropical, "explicit"),
])
def test_sdpa_paths_report_empty_rows_as_undefined(path: str, setup: Callable[[Any], Any],
                                                   backend: str) -> None:
    hj, args, ref = _sdpa_case(path)
    st = _run(hj, args, setup)
    assert st.backend == backend
    empty = st.keys == 0
    assert int(empty.sum()) == 2 and bool(empty[1, :, 2].all())
    assert torch.isnan(st.entropy[empty]).all() and torch.isneginf(st.lse[empty]).all()
    torch.testing.assert_close(st.entropy.double(), ref, atol=1e-5, rtol=1e-5, equal_nan=True)
    assert (st.topk_weights[empty] == 0).all() and (st.topk_indices[empty] == -1).all()


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_replayed_chain_reports_empty_rows_as_undefined(scale: float) -> None:
    hj, args, ref = _fused_case()
    (step,) = hj.steps.values()
    assert step.deform_core is not None
    eps0 = float(step.identified_epsilon)

    def setup(s: Any) -> None:
        s.epsilon = scale * eps0

    st = _run(hj, args, setup)
    if scale != 1.0:  # z = z₀·ε₀/ε: the bias scales with the logits
        q, k, _, b = args
        z = (q.double() @ k.double().transpose(-1, -2) * D ** -0.5 + b.double()) / scale
        ref = _entropy64(z).unsqueeze(0)
    empty = st.keys == 0
    assert int(empty.sum()) == 1 and bool(empty[0, 3, 2])
    assert torch.isnan(st.entropy[empty]).all() and torch.isneginf(st.lse[empty]).all()
    torch.testing.assert_close(st.entropy.double(), ref, atol=1e-5, rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("stats", [("entropy", "topk"), ("entropy", "weights")])
def test_recorder_agrees_with_the_step(stats: tuple[str, ...]) -> None:
    hj, args, ref = _sdpa_case("kernel")
    with torch.no_grad(), hjplug.instrument(hj, stats=stats) as rec:
        hj(*args)
    torch.testing.assert_close(rec["layers.0.attn.entropy"].double(), ref, atol=1e-5, rtol=1e-5,
                               equal_nan=True)
    assert not rec["layers.0.attn.nan"].any()
