"""HJ step modules off their identified ε, each against an independent evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hjplug
from hjplug.errors import InvalidArgumentError
from hjplug.modules import (
    HJActivationStep,
    HJAttentionStep,
    HJLSEStep,
    HJResidualStep,
    HJSSMStep,
)
from hjplug.spec import Hamiltonian, HJSpec


def _spec(kind: str, eps: float | None, time_step: float | None = None) -> HJSpec:
    exactness = "structural" if kind in ("residual", "ssm", "recurrent") else "exact"
    return HJSpec("x", kind, Hamiltonian("f"), eps, time_step, exactness)


def _qkv(seed: int, heads: int = 3, kv_heads: int = 3, t: int = 5, d: int = 4):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, heads, t, d, generator=g)
    k = torch.randn(2, kv_heads, t, d, generator=g)
    v = torch.randn(2, kv_heads, t, d, generator=g)
    return q, k, v


def test_attention_epsilon_is_inverse_scale(seed: int) -> None:
    q, k, v = _qkv(seed)
    step = HJAttentionStep(_spec("attention", 2.0), mode="sdpa", sdpa_kwargs={"scale": 0.5})
    step.epsilon = 0.25  # logits scale 4
    ref = F.scaled_dot_product_attention(q, k, v, scale=4.0)
    torch.testing.assert_close(step(q, k, v), ref, atol=1e-5, rtol=1e-5)


def test_attention_tropical_limit_is_hard_max(seed: int) -> None:
    q, k, v = _qkv(seed)
    step = HJAttentionStep(_spec("attention", 2.0), mode="sdpa", sdpa_kwargs={"is_causal": True})
    step.epsilon = 0.0
    out = step(q, k, v)
    s = q @ k.transpose(-1, -2)
    s = s.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
    idx = s.argmax(-1)  # (B, H, T) — random floats: no ties
    ref = torch.gather(v, -2, idx.unsqueeze(-1).expand(-1, -1, -1, v.shape[-1]))
    torch.testing.assert_close(out, ref)


def test_attention_gqa_and_mask_explicit_path(seed: int) -> None:
    q, k, v = _qkv(seed, heads=4, kv_heads=2)
    mask = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(seed + 1)) > 0.3
    mask[..., 0] = True  # every query keeps one key
    flags = {"enable_gqa": True}
    step = HJAttentionStep(_spec("attention", 2.0), mode="sdpa", sdpa_kwargs=flags)
    exact = step(q, k, v, mask)
    seen = []
    handle = step.observe("weights", lambda _s, _p, w: seen.append(w))
    explicit = step(q, k, v, mask)
    handle.remove()
    torch.testing.assert_close(explicit, exact, atol=1e-6, rtol=1e-5)
    assert len(seen) == 1 and seen[0].shape == (2, 4, 5, 5)
    torch.testing.assert_close(seen[0].sum(-1), torch.ones(2, 4, 5))
    assert not step.observed


def test_activation_family(seed: int) -> None:
    from hjplug.math import softplus_lse

    z = torch.randn(50, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    step = HJActivationStep(_spec("activation", 1.0), op="softplus", target=F.softplus)
    step.epsilon = 0.3
    torch.testing.assert_close(step(z), softplus_lse(z, 0.3))
    step.epsilon = 0.0
    torch.testing.assert_close(step(z), z.clamp_min(0))
    tanh = HJActivationStep(_spec("activation", 1.0), op="tanh", target=torch.tanh)
    tanh.epsilon = 0.0
    torch.testing.assert_close(tanh(z), torch.sign(z))


def test_lse_readout_temperature(seed: int) -> None:
    z = torch.randn(3, 7, generator=torch.Generator().manual_seed(seed))
    step = HJLSEStep(_spec("lse", 1.0), op="logsumexp", target=torch.logsumexp, args=(-1,), dim=-1)
    torch.testing.assert_close(step(z), torch.logsumexp(z, -1))
    step.epsilon = 0.0
    torch.testing.assert_close(step(z), z.max(-1).values)
    step.epsilon = 2.0
    ref = 2.0 * torch.log(torch.exp(z / 2.0).sum(-1))
    torch.testing.assert_close(step(z), ref)


def test_residual_time_step(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, f = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    step = HJResidualStep(_spec("residual", 0.0, 1.0), skip_first=False)
    torch.testing.assert_close(step(x, f), f + x)
    step.time_step = 0.25
    torch.testing.assert_close(step(x, f), x + 0.25 * f)
    assert step.spec.time_step == 0.25


def test_epsilon_validation() -> None:
    att = HJAttentionStep(_spec("attention", 2.0), mode="sdpa")
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(InvalidArgumentError, match="epsilon"):
            att.epsilon = bad  # type: ignore[assignment]
    res = HJResidualStep(_spec("residual", 0.0, 1.0), skip_first=True)
    with pytest.raises(InvalidArgumentError, match="deterministic"):
        res.epsilon = 1.0
    ssm = HJSSMStep(_spec("ssm", 0.0), targets={})
    ssm.epsilon = 0.0
    assert ssm.spec.epsilon == 0.0


def test_converted_epsilon_changes_spec_and_output(prepared) -> None:
    p = prepared("gpt2")
    hj = p.converted
    try:
        hj.set_epsilon(0.0, kind="attention")
        report = hjplug.inspect(hj)
        eps = [b.epsilon for b in report.blocks if b.kind == "attention"]
        assert eps == [0.0, 0.0]
        import hjzoo

        with torch.no_grad():
            out = hjzoo.call(hj, p.inputs)
        assert hjzoo.max_rel_error(p.reference, out) > 1e-3  # hard-max attention differs
    finally:
        hj.reset_epsilon()


def test_hand_written_cell_gates_deform(prepared) -> None:
    import hjzoo

    p = prepared("hand_gru")
    (step,) = p.converted.steps.values()
    x = p.inputs[0]
    try:
        step.epsilon = 0.0  # hard gates: σ → Heaviside, tanh → sign
        with torch.no_grad():
            out = hjzoo.call(p.converted, p.inputs)
        m = p.model
        h = x.new_zeros(x.shape[0], 12)
        for t in range(x.shape[1]):  # independent hard-gated GRU
            xh = torch.cat([x[:, t], h], -1)
            z, r = (m.cell.zr(xh) > 0).float().chunk(2, -1)
            n = torch.sign(m.cell.n(torch.cat([x[:, t], r * h], -1)))
            h = (1 - z) * n + z * h
        torch.testing.assert_close(out, m.out(h).detach())
    finally:
        step.reset_epsilon()


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_fused_recurrent_explicit_loop(prepared, name: str) -> None:
    """The explicit loop at ε = 1 equals the fused aten op; ε = 0.5 sharpens every gate."""
    import hjzoo

    p = prepared(name)
    (step,) = p.converted.steps.values()
    gates = []
    handle = step.observe("gate", lambda _s, _p, g: gates.append(g))
    try:
        with torch.no_grad():
            loop = hjzoo.call(p.converted, p.inputs)
        assert gates, "the explicit loop ran"
        assert hjzoo.max_rel_error(p.reference, loop) <= 1e-5
        handle.remove()
        step.epsilon = 0.5
        with torch.no_grad():
            sharp = hjzoo.call(p.converted, p.inputs)
        assert hjzoo.max_rel_error(p.reference, sharp) > 1e-3
    finally:
        handle.remove()
        step.reset_epsilon()


def test_bidirectional_two_layer_lstm_loop(seed: int) -> None:
    from hjplug.modules._rnn_loops import run_recurrent

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(3, 6, 5)
    h0, c0 = torch.randn(4, 3, 7), torch.randn(4, 3, 7)
    ref = lstm(x, (h0, c0))
    args = (x, [h0, c0], list(lstm._flat_weights), True, 2, 0.0, False, True, True)
    out = run_recurrent("lstm", args, 1.0)
    torch.testing.assert_close(out[0], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], ref[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2], ref[1][1], atol=1e-5, rtol=1e-5)


def test_ssm_delta_deforms_to_relu(prepared) -> None:
    """Mamba's Δ = softplus(·) = LSE₁(·, 0): at delta_epsilon = 0 it becomes ReLU (tropical)."""
    import hjzoo

    p = prepared("mamba")
    ssm = [s for s in p.converted.steps.values() if s.spec.kind == "ssm"]
    assert len(ssm) == 2 and all(s.spec.epsilon == 0.0 for s in ssm)
    deltas = []
    handle = ssm[0].observe("delta", lambda _s, _p, d: deltas.append(d))
    try:
        for s in ssm:
            s.delta_epsilon = 0.0
        with torch.no_grad():
            out = hjzoo.call(p.converted, p.inputs)
        assert deltas and all(bool((d >= 0).all()) for d in deltas)
        assert any(bool((d == 0).any()) for d in deltas)  # ReLU, not softplus (> 0)
        assert torch.isfinite(hjzoo.leaves(out)[0]).all()
        assert hjzoo.max_rel_error(p.reference, out) > 1e-4
    finally:
        handle.remove()
        for s in ssm:
            s.delta_epsilon = 1.0
