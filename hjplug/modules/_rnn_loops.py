"""Explicit time loops of aten.lstm / gru / rnn_* with ε-deformed gates (σ(z/ε), tanh(z/ε)),
and single steps of their *_cell forms (nn.LSTMCell / GRUCell / RNNCell).

At ε = 1 they equal the fused ops; ε = 0 gives hard gates (σ → Heaviside, tanh → sign).
An LSTM with proj_size carries a fifth weight W_hr per layer and direction: h = (o⊙tanh(c)) W_hrᵀ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor

from hjplug.modules.activation import deformed_activation

__all__ = ["run_cell", "run_recurrent"]

Gate = Callable[[str, Tensor], Tensor]
_CHUNKS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _cell(kind: str, x: Tensor, state: tuple[Tensor, ...], w: Sequence[Tensor], gate: Gate
          ) -> tuple[Tensor, ...]:
    """One step. x: (B, d_in); state: (h,) or (h, c), (B, d_h) each (h: (B, proj) with a
    projection); w: W_ih, W_hh[, b_ih, b_hh][, W_hr]."""
    h = state[0]
    bias = len(w) in (4, 5)
    gi = x @ w[0].T + (w[2] if bias else 0)  # (B, k·d_h)
    gh = h @ w[1].T + (w[3] if bias else 0)  # (B, k·d_h)
    if kind == "lstm":
        i, f, g, o = (gi + gh).chunk(4, -1)
        c = gate("sigmoid", f) * state[1] + gate("sigmoid", i) * gate("tanh", g)
        h = gate("sigmoid", o) * gate("tanh", c)
        return (h @ w[-1].T if len(w) in (3, 5) else h), c
    if kind == "gru":
        ir, iz, in_ = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r, z = gate("sigmoid", ir + hr), gate("sigmoid", iz + hz)
        n = gate("tanh", in_ + r * hn)
        return ((1 - z) * n + z * h,)
    pre = gi + gh
    return (gate("tanh", pre) if kind == "rnn_tanh" else torch.relu(pre),)


def run_recurrent(kind: str, args: Sequence[object], eps: float,
                  emit: Callable[[str, Tensor], None] | None = None) -> tuple[Tensor, ...]:
    """Evaluate aten.<kind>.input(input, hx, params, has_biases, layers, dropout, train, bidir,
    batch_first) with gates at ε. Returns the op's outputs: (out, h_n[, c_n])."""
    inp, hx, params, has_biases, layers, _drop, _train, bidir, batch_first = args[:9]
    x = cast(Tensor, inp if batch_first else cast(Tensor, inp).transpose(0, 1))  # (B, T, d)
    hs = cast(list[Tensor], list(hx) if isinstance(hx, list | tuple) else [hx])
    dirs = 2 if bidir else 1
    per = 4 if has_biases else 2
    if kind == "lstm" and len(params) == int(layers) * dirs * (per + 1):  # type: ignore
        per += 1  # proj_size: W_hr follows each layer's weights

    def gate(op: str, z: Tensor) -> Tensor:
        out = deformed_activation(op, z, eps)
        if emit is not None:
            emit("gate", out)
        return out

    finals: list[list[Tensor]] = [[] for _ in hs]
    for layer in range(int(layers)):  # type: ignore[call-overload]
        outs = []
        for d in range(dirs):
            idx = layer * dirs + d
            w = params[idx * per:(idx + 1) * per]  # type: ignore[index]
            state = tuple(s[idx] for s in hs)
            steps = range(x.shape[1] - 1, -1, -1) if d == 1 else range(x.shape[1])
            seq: list[Tensor] = [x[:, 0]] * x.shape[1]
            for t in steps:
                state = _cell(kind, x[:, t], state, w, gate)
                seq[t] = state[0]
            outs.append(torch.stack(seq, 1))  # (B, T, d_h)
            for k, s in enumerate(state):
                finals[k].append(s)
        x = torch.cat(outs, -1) if dirs == 2 else outs[0]
    out = x if batch_first else x.transpose(0, 1)
    return (out, *(torch.stack(f, 0) for f in finals))


def run_cell(kind: str, args: Sequence[object], eps: float,
             emit: Callable[[str, Tensor], None] | None = None) -> Tensor | tuple[Tensor, ...]:
    """Evaluate aten.<kind>(input, hx, w_ih, w_hh[, b_ih, b_hh]) (kind: lstm_cell, gru_cell,
    rnn_tanh_cell, rnn_relu_cell) with gates at ε: (h', c') for LSTM, h' otherwise."""
    x, hx, w_ih, w_hh = args[:4]
    biases = [b for b in args[4:6] if b is not None]
    w = (w_ih, w_hh, *biases) if len(biases) == 2 else (w_ih, w_hh)

    def gate(op: str, z: Tensor) -> Tensor:
        out = deformed_activation(op, z, eps)
        if emit is not None:
            emit("gate", out)
        return out

    state = tuple(hx) if isinstance(hx, list | tuple) else (hx,)  # type: ignore[arg-type]
    out = _cell(kind.removesuffix("_cell"), x, state, w, gate)  # type: ignore[arg-type]
    return out if kind == "lstm_cell" else out[0]
