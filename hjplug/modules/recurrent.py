"""HJRecurrentStep: RNN / LSTM / GRU as gated Euler steps (structural; gates exact at ε = 1).

    RNN:  h' = tanh(W h + U x + b)             Euler step (Δt = 1) of ḣ = −h + tanh(·)
    GRU:  h' = (1 − z)⊙n + z⊙h                 Gibbs average of {update, keep}, z = σ(·) (2 atoms)
    LSTM: c' = f⊙c + i⊙g, h' = o⊙tanh(c')      σ gates = 2-atom Gibbs weights at ε = 1
A fused op (aten.lstm/gru/rnn_*, or one *_cell step) is replayed as is at ε = 1 and run as an
explicit time loop (one cell step) with gates σ(z/ε), tanh(z/ε) otherwise (ε = 0: hard gates;
rnn_relu keeps its ReLU at every ε); while
observed at ε = 1 the loop only supplies the gates and the output stays the fused op's; a
hand-written cell is one step whose gates (every σ / tanh of the cell) are evaluated here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from hjplug.errors import HJPlugError
from hjplug.modules._rnn_loops import run_cell, run_recurrent
from hjplug.modules.activation import deformed_activation
from hjplug.modules.base import HJStep
from hjplug.spec import HJSpec

__all__ = ["HJRecurrentStep"]

_CELLS = ("lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell")


class HJRecurrentStep(HJStep):
    """forward(*args, gate=None): a fused recurrent op (`target`) or one gate of a written cell."""

    hook_points: ClassVar[tuple[str, ...]] = ("gate", "output")

    def __init__(self, spec: HJSpec, *, target: Any = None) -> None:
        super().__init__(spec)
        self.target = target

    def forward(self, *args: Any, gate: str | None = None) -> Any:
        if gate is None:  # the fused op
            if self.at_identified and not self.observed:
                return self.target(*args)
            kind = self._spec.notes
            if kind in _CELLS:  # one step of nn.LSTMCell / GRUCell / RNNCell
                out = run_cell(kind, args, float(self._epsilon), self._emit)  # type: ignore[arg-type]
                if self.at_identified:
                    out = self.target(*args)
                self._emit("output", out[0] if isinstance(out, tuple) else out)
                return out
            if kind not in ("lstm", "gru", "rnn_tanh", "rnn_relu") or len(args) < 9:
                raise HJPlugError(f"{self._spec.path}: no explicit loop for {kind!r} with these "
                                  "arguments; reset_epsilon() to replay the fused op.")
            out = run_recurrent(kind, args, float(self._epsilon), self._emit)  # type: ignore[arg-type]
            if self.at_identified:  # observed only: the gates came from the loop, the output
                out = self.target(*args)  # is the fused op's, exactly as without observers
            self._emit("output", out[0])
            return out
        z: Tensor = args[0]
        if self.at_identified and not self.observed:
            return z.sigmoid() if gate == "sigmoid" else z.tanh()
        out = deformed_activation(gate, z, float(self._epsilon))  # type: ignore[arg-type]
        self._emit("gate", out)
        return out
