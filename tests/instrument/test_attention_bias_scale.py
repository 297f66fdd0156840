"""FX eager attention chains whose additive bias is added before a later scaling, e.g.
softmax((q kᵀ + b)/√d) v: the bias enters the softmax input as factor·b (factor = the scalings
after its add), so off the plain replay (statistics, observed scores, a deformed ε) the step must
add factor·b, not b. Each chain against an independent fp64 evaluation of its softmax input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import hjplug
from hjplug.modules.attention import HJAttentionStep

B, S, H, DH = 2, 6, 2, 8
D = H * DH
C = 3.0  # the divisor of the two-bias chain


class Chain(nn.Module):
    """q, k, v projections and one eager attention chain (`kind`) with float bias buffers."""

    def __init__(self, kind: str, masked_key: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.q, self.k, self.v = (nn.Linear(D, D) for _ in range(3))
        g = torch.Generator().manual_seed(7)
        b1 = 3.0 * torch.randn(1, H, S, S, generator=g)
        if masked_key:  # a removed key (HF's finite stand-in for −∞) in every query row
            b1[:, :, :, 1] = torch.finfo(torch.float32).min
        self.register_buffer("b1", b1)
        self.register_buffer("b2", 2.0 * torch.randn(1, H, S, S, generator=g))

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(lin(x).view(x.shape[0], S, H, DH).transpose(1, 2)  # type: ignore[return-value]
                     for lin in (self.q, self.k, self.v))

    def logits(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The softmax input z₀ of each chain."""
        s = q @ k.transpose(-1, -2)
        if self.kind == "bias_then_div":
            return (s + self.b1) / math.sqrt(DH)
        if self.kind == "div_then_bias":
            return s / math.sqrt(DH) + self.b1
        if self.kind == "two_biases":
            return (s + self.b1) / C + self.b2
        if self.kind == "bias_then_mul":
            return (s + self.b1) * DH ** -0.5
        assert self.kind == "masked_fill_then_div"  # masked_fill before the scaling: replayed
        filled = s.masked_fill(self.filled(), torch.finfo(s.dtype).min)
        return (filled + self.b1) / math.sqrt(DH)

    def filled(self) -> torch.Tensor:
        """The keys the masked_fill chain removes ([1, H, S, S]; key 0 always kept)."""
        out = self.b2 > 2.0
        out[..., 0] = False
        return out

    def removed(self) -> torch.Tensor:
        """Every removed key: the finfo.min stand-ins of b1, and the masked_fill's keys."""
        gone = self.b1 <= torch.finfo(self.b1.dtype).min / 2
        return gone | self.filled() if self.kind == "masked_fill_then_div" else gone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        a = torch.softmax(self.logits(q, k), dim=-1)
        return (a @ v).transpose(1, 2).reshape(x.shape[0], S, D)


# kind → ε₀ = 1/(the product of the scalings after q kᵀ)
KINDS = {"bias_then_div": math.sqrt(DH), "div_then_bias": math.sqrt(DH), "two_biases": C,
         "bias_then_mul": math.sqrt(DH)}
REPLAYED = "masked_fill_then_div"


def _build(kind: str) -> tuple[Chain, nn.Module, HJAttentionStep, torch.Tensor]:
    torch.manual_seed(0)
    m = Chain(kind).eval()
    x = torch.randn(B, S, D, generator=torch.Generator().manual_seed(1))
    hj = hjplug.convert(m, (x,))
    steps = [s for s in hj.modules() if isinstance(s, HJAttentionStep)]
    assert len(steps) == 1, [type(s).__name__ for s in hj.modules()]
    return m, hj, steps[0], x


def _fp64(m: Chain, x: torch.Tensor, lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax input z₀, output) of the model in fp64; λ: z = z₀/λ with removed keys kept."""
    m64 = copy.deepcopy(m).double()
    with torch.no_grad():
        q, k, v = m64.heads(x.double())
        z = torch.where(m.removed(), float("-inf"), m64.logits(q, k) / lam)
        out = (torch.softmax(z, -1) @ v).transpose(1, 2).reshape(x.shape[0], S, D)
    return z, out


def _stat(rec, name: str) -> torch.Tensor:
    (key,) = [k for k in rec if k.endswith(f".{name}")]
    return rec[key].double()


@pytest.mark.parametrize("kind", [*KINDS, REPLAYED])
def test_plain_conversion_and_epsilon(kind: str) -> None:
    m, hj, step, x = _build(kind)
    with torch.no_grad():
        assert torch.equal(hj(x), m(x))  # the original ops
    if kind in KINDS:
        assert math.isclose(float(step.identified_epsilon), KINDS[kind], rel_tol=1e-12)
        assert step.deform_core is None  # the fast path is kept: biases pre-scaled in the graph
    else:
        assert step.deform_core is not None  # masked_fill in the chain: replayed


@pytest.mark.parametrize("kind", [*KINDS, REPLAYED])
def test_statistics_match_the_models_own_softmax_input(kind: str) -> None:
    m, hj, _, x = _build(kind)
    with torch.no_grad():
        ref = m(x)
        with hjplug.instrument(hj, stats=("entropy", "lse")) as rec:
            got = hj(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    z, out64 = _fp64(m, x)
    torch.testing.assert_close(got.double(), out64, atol=1e-5, rtol=1e-5)
    p = torch.softmax(z, -1)
    entropy = -(p * torch.log_softmax(z, -1).nan_to_num(neginf=0.0)).sum(-1)
    lse = torch.logsumexp(z, -1)
    torch.testing.assert_close(_stat(rec, "entropy"), entropy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_stat(rec, "lse"), lse, atol=1e-4, rtol=1e-5)
    # removed keys are no atoms, also the replayed chain's finfo.min/√d stand-ins (≤ −10³⁰)
    keys = (~m.removed()).sum(-1).expand(B, H, S)
    assert torch.equal(_stat(rec, "keys").long(), keys)


@pytest.mark.parametrize("kind", [*KINDS, REPLAYED])
def test_observed_scores_are_the_softmax_input(kind: str) -> None:
    m, hj, step, x = _build(kind)
    seen: dict[str, torch.Tensor] = {}
    handle = step.observe("scores", lambda s, p, z: seen.setdefault("z", z))
    try:
        with torch.no_grad():
            got = hj(x)
    finally:
        handle.remove()
    with torch.no_grad():
        torch.testing.assert_close(got, m(x), atol=1e-5, rtol=1e-5)
    z, _ = _fp64(m, x)
    kept = z > float("-inf")
    torch.testing.assert_close(seen["z"].double()[kept], z[kept], atol=1e-4, rtol=1e-5)
    assert bool((seen["z"][~kept] < -1e30).all())  # removed keys stay removed (−∞ / stand-in)


@pytest.mark.parametrize("kind", [*KINDS, REPLAYED])
@pytest.mark.parametrize("lam", [0.5, 2.5])
def test_deformed_epsilon_is_a_temperature_of_the_whole_logits(kind: str, lam: float) -> None:
    m, hj, _, x = _build(kind)
    with torch.no_grad(), hjplug.deform(hj, lam):
        got = hj(x)
    _, want = _fp64(m, x, lam)
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_per_head_and_hard_max(kind: str) -> None:
    m, hj, _, x = _build(kind)
    with torch.no_grad(), hjplug.deform(hj, 3.0, heads=[1]):
        got = hj(x)
    z0, _ = _fp64(m, x)
    m64 = copy.deepcopy(m).double()
    with torch.no_grad():
        v = m64.heads(x.double())[2]
    z = z0 / torch.tensor([1.0, 3.0], dtype=torch.float64).view(H, 1, 1)
    want = (torch.softmax(z, -1) @ v).transpose(1, 2).reshape(B, S, D)
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)
    with torch.no_grad(), hjplug.deform(hj, 0.0):
        hard = hj(x)
    idx = z0.argmax(-1, keepdim=True)  # random floats: no ties
    want = v.gather(-2, idx.expand(-1, -1, -1, DH)).transpose(1, 2).reshape(B, S, D)
    torch.testing.assert_close(hard.double(), want, atol=1e-5, rtol=1e-5)
