"""Non-attention HJ steps in converted models: instrumentation and ε-deformation never change
what the graph computes at the identified ε, and off it they follow the documented formula.

Each check compares a converted model against the unmodified model and against an independent
fp64 evaluation written here from the model's own parameters (paper-notes §7: never the same
arithmetic twice).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import hjplug
from hjplug.modules import HJActivationStep, HJLSEStep, HJRecurrentStep, HJSSMStep

DTYPES = (torch.float32, torch.float64)


def _convert(model: nn.Module, inputs: tuple) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return hjplug.convert(model, inputs)


def _one(hj: nn.Module, cls: type) -> object:
    (step,) = [s for s in hj.steps.values() if isinstance(s, cls)]
    return step


# ------------------------------------------------------------------------------------ LSE
class _Head(nn.Module):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.lin(x))


# name: (fn of the logits, op, reduced dim, keepdim, ε₀, overall gain g of the output,
#        output dtype or None).  The model computes g·LSE(z/ε₀) (logsumexp) or
#        softmax / log_softmax(z/ε₀); the step at ε: (g/ε₀)·ε·LSE(z/ε), softmax(z/ε), …
LSE_CASES: dict[str, tuple] = {
    "lse": (lambda z: torch.logsumexp(z, -1), "logsumexp", -1, False, 1.0, 1.0, None),
    "lse_keepdim": (lambda z: torch.logsumexp(z, -1, keepdim=True), "logsumexp", -1, True,
                    1.0, 1.0, None),
    "lse_dim0": (lambda z: torch.logsumexp(z, 0), "logsumexp", 0, False, 1.0, 1.0, None),
    "lse_div": (lambda z: torch.logsumexp(z / 0.5, -1), "logsumexp", -1, False, 0.5, 1.0, None),
    "lse_mul": (lambda z: torch.logsumexp(z * 4.0, -1), "logsumexp", -1, False, 0.25, 1.0,
                None),
    "lse_layer": (lambda z: 0.5 * torch.logsumexp(z / 0.5, -1), "logsumexp", -1, False, 0.5,
                  0.5, None),
    "lse_post_mul": (lambda z: 2.0 * torch.logsumexp(z, -1), "logsumexp", -1, False, 1.0, 2.0,
                     None),
    "lse_post_div": (lambda z: torch.logsumexp(z * 2.0, 0, keepdim=True) / 2.0, "logsumexp", 0,
                     True, 0.5, 0.5, None),
    "softmax": (lambda z: torch.softmax(z, -1), "softmax", -1, False, 1.0, 1.0, None),
    "softmax_T": (lambda z: torch.softmax(z / 0.7, -1), "softmax", -1, False, 0.7, 1.0, None),
    "softmax_mul_dim0": (lambda z: torch.softmax(z * 1.25, 0), "softmax", 0, False, 0.8, 1.0,
                         None),
    "softmax_dtype": (lambda z: torch.softmax(z, -1, dtype=torch.float64), "softmax", -1, False,
                      1.0, 1.0, torch.float64),
    "log_softmax_T": (lambda z: torch.log_softmax(z / 0.7, -1), "log_softmax", -1, False, 0.7,
                      1.0, None),
}


def _lse_ref(z: Tensor, op: str, dim: int, keepdim: bool, eps0: float, gain: float,
             eps: float) -> Tensor:
    """Independent fp64 evaluation of the documented ε-family (z: the unscaled logits)."""
    z = z.double()
    if op == "logsumexp":
        if eps == 0:
            v = z.amax(dim, keepdim=keepdim)
        else:
            m = z.amax(dim, keepdim=True)
            v = m + eps * torch.log(torch.exp((z - m) / eps).sum(dim, keepdim=True))
            v = v if keepdim else v.squeeze(dim)
        return gain / eps0 * v
    if eps == 0:
        hit = (z == z.amax(dim, keepdim=True)).double()
        p = hit / hit.sum(dim, keepdim=True)
        return p if op == "softmax" else p.log()
    w = torch.exp(z / eps - (z / eps).amax(dim, keepdim=True))
    p = w / w.sum(dim, keepdim=True)
    return p if op == "softmax" else p.log()


def _lse_setup(name: str, dtype: torch.dtype, seed: int):
    fn, *case = LSE_CASES[name]
    torch.manual_seed(seed)
    model = _Head(fn).to(dtype).eval()
    x = torch.randn(3, 4, dtype=dtype)
    w, b = model.lin.weight.detach().double(), model.lin.bias.detach().double()
    z = x.double() @ w.T + b  # the unscaled logits, independently
    with torch.no_grad():
        ref = model(x)
    return model, x, z, ref, case


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(LSE_CASES))
def test_lse_instrumented_output_and_stats(name: str, dtype: torch.dtype, seed: int) -> None:
    model, x, z, ref, (_, dim, _, eps0, _, _) = _lse_setup(name, dtype, seed)
    hj = _convert(model, (x,))
    step = _one(hj, HJLSEStep)
    assert step.identified_epsilon == pytest.approx(eps0)
    with torch.no_grad():
        assert torch.equal(hj(x), ref)  # (a)
        with hjplug.instrument(hj, stats=("lse", "entropy")) as rec:
            out = hj(x)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert torch.equal(out, ref)  # (b) instrumentation changes nothing
    zs = z.movedim(dim, -1) / eps0
    lse = torch.logsumexp(zs, -1)
    p = torch.softmax(zs, -1)
    ent = -(p * torch.log_softmax(zs, -1)).sum(-1)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                          "atol": 1e-5}
    torch.testing.assert_close(rec["readout.lse0.lse"].double(), lse, **tol)
    torch.testing.assert_close(rec["readout.lse0.entropy"].double(), ent, **tol)
    torch.testing.assert_close(rec["readout.lse0.value"].double(), eps0 * lse, **tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(LSE_CASES))
def test_lse_deformed_follows_the_formula(name: str, dtype: torch.dtype, seed: int) -> None:
    model, x, z, ref, (op, dim, keepdim, eps0, gain, out_dtype) = _lse_setup(name, dtype, seed)
    hj = _convert(model, (x,))
    step = _one(hj, HJLSEStep)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5,
                                                                          "atol": 2e-5}
    try:
        step.epsilon = eps0  # λ = 1, set explicitly
        with torch.no_grad():
            assert torch.equal(hj(x), ref)
        for lam in (0.5, 3.0, 0.0):
            hj.set_epsilon(lam * eps0, kind="lse")
            with torch.no_grad():
                out = hj(x)
            assert out.dtype == (out_dtype or dtype) and out.shape == ref.shape
            want = _lse_ref(z, op, dim, keepdim, eps0, gain, lam * eps0)
            torch.testing.assert_close(out.double(), want, **tol)
    finally:
        hj.reset_epsilon()
    with torch.no_grad():
        assert torch.equal(hj(x), ref)


def test_lse_negative_scale_is_no_temperature(seed: int) -> None:
    """logits·(−2): a negative factor is no temperature (ε would be < 0); it stays in the
    graph and the readout is read at ε = 1."""
    model, x, z, ref, _ = _lse_setup("softmax", torch.float64, seed)
    model.fn = lambda t: torch.softmax(t * -2.0, -1)
    with torch.no_grad():
        ref = model(x)
    hj = _convert(model, (x,))
    step = _one(hj, HJLSEStep)
    assert step.identified_epsilon == 1.0
    try:
        hj.set_epsilon(0.5, kind="lse")
        with torch.no_grad():
            torch.testing.assert_close(hj(x), torch.softmax(z * -4.0, -1))
    finally:
        hj.reset_epsilon()
    with torch.no_grad():
        assert torch.equal(hj(x), ref)


# ----------------------------------------------------------------------------- activation
class _Act(nn.Module):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 5)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.lin(x))


def _family(op: str, z: Tensor, eps: float) -> Tensor:
    """softplus_ε = ε·log(1 + e^{z/ε}), σ(z/ε), tanh(z/ε); ε = 0: ReLU, Heaviside(½), sign."""
    if eps == 0:
        return {"softplus": z.clamp_min(0), "relu": z.clamp_min(0),
                "sigmoid": (z > 0).double() + 0.5 * (z == 0).double(), "tanh": z.sign()}[op]
    if op in ("softplus", "relu"):
        return eps * torch.log1p(torch.exp(-(z / eps).abs())) + z.clamp_min(0)
    if op == "sigmoid":
        return 1 / (1 + torch.exp(-z / eps))
    return (1 - torch.exp(-2 * z / eps)) / (1 + torch.exp(-2 * z / eps))


ACT_CASES: dict[str, tuple] = {
    "softplus": (F.softplus, "softplus", 1.0),
    "softplus_beta": (lambda z: F.softplus(z, beta=2.0), "softplus", 0.5),
    "softplus_beta_threshold": (lambda z: F.softplus(z, beta=2.0, threshold=1.0), "softplus",
                                0.5),
    "softplus_threshold": (lambda z: F.softplus(z, threshold=0.5), "softplus", 1.0),
    "sigmoid": (torch.sigmoid, "sigmoid", 1.0),
    "tanh": (torch.tanh, "tanh", 1.0),
    "relu": (torch.relu, "relu", 0.0),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(ACT_CASES))
def test_activation_observed_and_deformed(name: str, dtype: torch.dtype, seed: int) -> None:
    fn, op, eps0 = ACT_CASES[name]
    torch.manual_seed(seed)
    model = _Act(fn).to(dtype).eval()
    x = 3 * torch.randn(4, 5, dtype=dtype)
    with torch.no_grad():
        ref = model(x)
    hj = _convert(model, (x,))
    step = _one(hj, HJActivationStep)
    assert step.identified_epsilon == eps0
    z = x.double() @ model.lin.weight.detach().double().T + model.lin.bias.detach().double()
    seen: list[Tensor] = []
    handle = step.observe("input", lambda _s, _p, t: seen.append(t))
    try:
        with torch.no_grad():
            out = hj(x)
    finally:
        handle.remove()
    assert torch.equal(out, ref)  # observing changes nothing
    torch.testing.assert_close(seen[0].double(), z, rtol=1e-5, atol=1e-5)
    # softplus_ε switches to z where z/ε > 20 (torch's threshold): off by ε·e^{−20} ≲ 5e-9
    tol = {"rtol": 1e-12, "atol": 1e-8} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                         "atol": 1e-5}
    try:
        for eps in (0.25, 2.0, 0.0):
            step.epsilon = eps
            with torch.no_grad():
                out = hj(x)
            torch.testing.assert_close(out.double(), _family(op, z, eps), **tol)
        step.epsilon = eps0
        with torch.no_grad():
            assert torch.equal(hj(x), ref)
    finally:
        step.reset_epsilon()


# ------------------------------------------------------------------------------ recurrent
class _Seq(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor, *state: Tensor) -> tuple:
        if not state:
            return self.rnn(x)
        return self.rnn(x, state[0] if len(state) == 1 else tuple(state))


RNN_CASES: dict[str, tuple] = {
    "lstm": (nn.LSTM, {}, 5, False),
    "lstm_batch_first": (nn.LSTM, {"batch_first": True}, 5, False),
    "lstm_2layer_bidir_h0": (nn.LSTM, {"num_layers": 2, "bidirectional": True}, 4, True),
    "lstm_nobias_T1": (nn.LSTM, {"bias": False, "batch_first": True}, 1, True),
    "lstm_dropout_eval": (nn.LSTM, {"num_layers": 2, "dropout": 0.4}, 4, False),
    "lstm_proj": (nn.LSTM, {"proj_size": 3}, 5, False),
    "lstm_proj_2layer_bidir_h0": (nn.LSTM, {"proj_size": 3, "num_layers": 2,
                                            "bidirectional": True, "batch_first": True}, 4, True),
    "lstm_proj_nobias": (nn.LSTM, {"proj_size": 2, "bias": False}, 3, True),
    "gru": (nn.GRU, {}, 5, False),
    "gru_2layer_bidir_h0": (nn.GRU, {"num_layers": 2, "bidirectional": True,
                                     "batch_first": True}, 4, True),
    "gru_nobias": (nn.GRU, {"bias": False}, 3, False),
    "rnn_tanh_h0": (nn.RNN, {"num_layers": 2}, 4, True),
    "rnn_relu_bidir": (nn.RNN, {"nonlinearity": "relu", "bidirectional": True}, 4, False),
}


def _rnn_reference(mod: nn.Module, x: Tensor, state: tuple[Tensor, ...], eps: float
                   ) -> tuple[Tensor, ...]:
    """Independent fp64 loop of nn.LSTM / GRU / RNN with gates σ(z/ε), tanh(z/ε) (ε = 0: hard
    gates), written from the module's named parameters."""
    def sig(t: Tensor) -> Tensor:
        return torch.sigmoid(t / eps) if eps else (t > 0).double() + 0.5 * (t == 0).double()

    def tanh(t: Tensor) -> Tensor:
        return torch.tanh(t / eps) if eps else t.sign()

    kind = type(mod).__name__
    relu = kind == "RNN" and mod.nonlinearity == "relu"
    seq = x.double() if mod.batch_first else x.double().transpose(0, 1)  # (B, T, d)
    dirs = 2 if mod.bidirectional else 1
    proj = getattr(mod, "proj_size", 0)
    B, T = seq.shape[:2]
    h_size = proj or mod.hidden_size
    h0 = state[0].double() if state else seq.new_zeros(mod.num_layers * dirs, B, h_size)
    c0 = None
    if kind == "LSTM":
        c0 = state[1].double() if state else seq.new_zeros(mod.num_layers * dirs, B,
                                                           mod.hidden_size)
    hn, cn = [], []
    for layer in range(mod.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"l{layer}" + ("_reverse" if d else "")

            def p(name: str, sfx: str = sfx) -> Tensor | float:
                t = getattr(mod, f"{name}_{sfx}", None)
                return 0.0 if t is None else t.detach().double()

            w_ih, w_hh, b_ih, b_hh = p("weight_ih"), p("weight_hh"), p("bias_ih"), p("bias_hh")
            h = h0[layer * dirs + d]
            c = c0[layer * dirs + d] if c0 is not None else None
            ys: list[Tensor] = [h] * T
            for t in (reversed(range(T)) if d else range(T)):
                a = seq[:, t] @ w_ih.T + b_ih
                r = h @ w_hh.T + b_hh
                U = mod.hidden_size
                if kind == "LSTM":
                    i, f, g, o = (a[:, k * U:(k + 1) * U] + r[:, k * U:(k + 1) * U]
                                  for k in range(4))
                    c = sig(f) * c + sig(i) * tanh(g)
                    h = sig(o) * tanh(c)
                    if proj:
                        h = h @ p("weight_hr").T
                elif kind == "GRU":
                    rr = sig(a[:, :U] + r[:, :U])
                    zz = sig(a[:, U:2 * U] + r[:, U:2 * U])
                    n = tanh(a[:, 2 * U:] + rr * r[:, 2 * U:])
                    h = (1 - zz) * n + zz * h
                else:
                    h = (a + r).clamp_min(0) if relu else tanh(a + r)
                ys[t] = h
            outs.append(torch.stack(ys, 1))
            hn.append(h)
            if c is not None:
                cn.append(c)
        seq = torch.cat(outs, -1)
    out = seq if mod.batch_first else seq.transpose(0, 1)
    return (out, torch.stack(hn), *((torch.stack(cn),) if cn else ()))


def _flat(out: object) -> tuple[Tensor, ...]:
    return tuple(torch.utils._pytree.tree_leaves(out))


def _rnn_setup(name: str, dtype: torch.dtype, seed: int):
    cls, kw, T, with_state = RNN_CASES[name]
    torch.manual_seed(seed)
    mod = cls(4, 6, **kw).to(dtype).eval()
    model = _Seq(mod).eval()
    x = torch.randn((2, T, 4) if mod.batch_first else (T, 2, 4), dtype=dtype)
    n = mod.num_layers * (2 if mod.bidirectional else 1)
    state: tuple[Tensor, ...] = ()
    if with_state:
        state = (torch.randn(n, 2, getattr(mod, "proj_size", 0) or 6, dtype=dtype),)
        if cls is nn.LSTM:
            state += (torch.randn(n, 2, 6, dtype=dtype),)
    with torch.no_grad():
        ref = _flat(model(x, *state))
    return mod, model, (x, *state), ref


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(RNN_CASES))
def test_recurrent_observed_output_is_the_model(name: str, dtype: torch.dtype, seed: int
                                                ) -> None:
    _, model, inputs, ref = _rnn_setup(name, dtype, seed)
    hj = _convert(model, inputs)
    step = _one(hj, HJRecurrentStep)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(_flat(hj(*inputs)), ref, strict=True))
        with hjplug.instrument(hj):
            out = _flat(hj(*inputs))
    assert all(torch.equal(a, b) for a, b in zip(out, ref, strict=True))
    gates: list[Tensor] = []
    seen: list[Tensor] = []
    handles = [step.observe("gate", lambda _s, _p, g: gates.append(g)),
               step.observe("output", lambda _s, _p, o: seen.append(o))]
    try:
        with torch.no_grad():
            out = _flat(hj(*inputs))
    finally:
        for h in handles:
            h.remove()
    assert bool(gates) != (name == "rnn_relu_bidir"), "the gates (σ / tanh) were evaluated"
    assert all(torch.equal(a, b) for a, b in zip(out, ref, strict=True))  # observing: no change
    assert len(seen) == 1 and torch.equal(seen[0], ref[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(RNN_CASES))
def test_recurrent_deformed_follows_the_formula(name: str, dtype: torch.dtype, seed: int
                                                ) -> None:
    mod, model, inputs, ref = _rnn_setup(name, dtype, seed)
    hj = _convert(model, inputs)
    step = _one(hj, HJRecurrentStep)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-4,
                                                                          "atol": 1e-5}
    try:
        step.epsilon = 1.0  # λ = 1
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(_flat(hj(*inputs)), ref, strict=True))
        for eps in (0.5, 2.0, 0.0):
            hj.set_epsilon(eps, kind="recurrent")
            with torch.no_grad():
                out = _flat(hj(*inputs))
            want = _rnn_reference(mod, inputs[0], inputs[1:], eps)
            assert len(out) == len(want)
            for a, b in zip(out, want, strict=True):
                torch.testing.assert_close(a.double(), b, **tol)
    finally:
        hj.reset_epsilon()


def test_recurrent_reference_is_the_module(seed: int) -> None:
    """The independent loop itself, at ε = 1, against the modules (so it can judge the step)."""
    for name in RNN_CASES:
        mod, _, inputs, ref = _rnn_setup(name, torch.float64, seed)
        want = _rnn_reference(mod, inputs[0], inputs[1:], 1.0)
        for a, b in zip(ref, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------ SSM
class _Scan(nn.Module):
    """A selective scan in plain torch: Δ = softplus_β(W_Δ u), A = −exp(A_log), Ā = exp(ΔA)."""

    def __init__(self, beta: float, d: int = 4, n: int = 3) -> None:
        super().__init__()
        self.A_log = nn.Parameter(0.3 * torch.randn(d, n))
        self.dt, self.B, self.C = nn.Linear(d, d), nn.Linear(d, n), nn.Linear(d, n)
        self.beta = beta

    def forward(self, u: Tensor) -> Tensor:  # (B, T, d)
        return self.scan(u, lambda t: F.softplus(t, beta=self.beta))

    def scan(self, u: Tensor, delta_fn: Callable[[Tensor], Tensor]) -> Tensor:
        delta = delta_fn(self.dt(u))
        A = -torch.exp(self.A_log)
        Bm, Cm = self.B(u), self.C(u)
        x = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
        ys = []
        for t in range(u.shape[1]):
            x = torch.exp(delta[:, t, :, None] * A) * x \
                + delta[:, t, :, None] * Bm[:, t, None, :] * u[:, t, :, None]
            ys.append((x * Cm[:, t, None, :]).sum(-1))
        return torch.stack(ys, 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_ssm_delta_family_through_the_identified_delta(beta: float, dtype: torch.dtype,
                                                        seed: int) -> None:
    """delta_epsilon = λ: Δ = softplus_{λ·ε_Δ}(·), ε_Δ = 1/β the block's own softplus (λ = 1:
    the original Δ, λ = 0: ReLU), so the family passes through the model continuously."""
    torch.manual_seed(seed)
    model = _Scan(beta).to(dtype).eval()
    u = torch.randn(2, 4, 4, dtype=dtype)
    with torch.no_grad():
        ref = model(u)
    hj = _convert(model, (u,))
    step = _one(hj, HJSSMStep)
    deltas: list[Tensor] = []
    handle = step.observe("delta", lambda _s, _p, d: deltas.append(d))
    try:
        with torch.no_grad():
            assert torch.equal(hj(u), ref)
    finally:
        handle.remove()
    assert deltas
    m64 = _Scan(beta).double()
    m64.load_state_dict(model.state_dict())
    tol = {"rtol": 1e-10, "atol": 1e-8} if dtype == torch.float64 else {"rtol": 1e-4,
                                                                         "atol": 1e-5}
    try:
        for lam in (1.0 - 1e-9, 0.5, 3.0, 0.0):
            step.delta_epsilon = lam
            eps = lam / beta

            def delta(t: Tensor, eps: float = eps) -> Tensor:
                if eps == 0:
                    return t.clamp_min(0)
                return eps * torch.log1p(torch.exp(-(t / eps).abs())) + t.clamp_min(0)

            with torch.no_grad():
                out = hj(u)
                want = m64.scan(u.double(), delta)
            torch.testing.assert_close(out.double(), want, **tol)
    finally:
        step.delta_epsilon = 1.0


# ------------------------------------------------------------------------------- residual
class _Res(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.f, self.ln, self.mode = nn.Linear(5, 5), nn.LayerNorm(5), mode

    def update(self, x: Tensor) -> Tensor:
        """F(x) as the step sees it (the learned update, including a scale written into it)."""
        m = self.mode
        inner = self.ln(x) if m == "prenorm" else x
        y = self.f(inner)
        return 0.3 * y if m in ("scaled_update", "alpha_kw") else y

    def forward(self, x: Tensor) -> Tensor:
        m = self.mode
        if m == "plain":
            return x + self.f(x)
        if m == "scaled_update":
            return x + 0.3 * self.f(x)
        if m == "alpha_kw":
            return torch.add(x, self.f(x), alpha=0.3)
        if m == "update_first":
            return self.f(x) + x
        if m == "prenorm":
            return x + self.f(self.ln(x))
        return self.ln(x + self.f(x))  # postnorm


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["plain", "scaled_update", "alpha_kw", "update_first",
                                  "prenorm", "postnorm"])
def test_residual_observed_and_time_step(mode: str, dtype: torch.dtype, seed: int) -> None:
    from hjplug.modules import HJResidualStep

    torch.manual_seed(seed)
    model = _Res(mode).to(dtype).eval()
    x = torch.randn(3, 5, dtype=dtype)
    with torch.no_grad():
        ref = model(x)
    hj = _convert(model, (x,))
    step = _one(hj, HJResidualStep)
    h0 = step.time_step
    assert h0 == (0.3 if mode == "alpha_kw" else 1.0)
    handle = step.observe("update", lambda *_: None)
    try:
        with torch.no_grad():
            assert torch.equal(hj(x), ref)
    finally:
        handle.remove()
    m64 = _Res(mode).double()
    m64.load_state_dict(model.state_dict())
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5,
                                                                          "atol": 1e-5}
    try:
        for lam in (0.5, 2.0, 0.0):
            step.time_step = lam * h0
            with torch.no_grad():
                out = hj(x)
                xd = x.double()
                # x + h·F(x), F(x) = the update per unit step (h₀ = alpha for add(…, alpha=h₀))
                unit = m64.update(xd) / (0.3 if mode == "alpha_kw" else 1.0)
                want = xd + lam * h0 * unit
                if mode == "postnorm":
                    want = m64.ln(want)
            torch.testing.assert_close(out.double(), want, **tol)
        step.time_step = h0
        with torch.no_grad():
            assert torch.equal(hj(x), ref)
    finally:
        step.time_step = h0
