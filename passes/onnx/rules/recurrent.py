"""Rule `recurrent`: the `LSTM` / `GRU` / `RNN` ops (one node = one recurrent block).

    RNN  h' = tanh(W h + U x + b):  Euler step (Δt = 1) of ḣ = −h + tanh(·)
    LSTM / GRU: gated Euler steps; σ gates = 2-atom Gibbs weights (ε = 1)
Structural (paper-notes §4). Unrolled recurrences (e.g. nn.RNN through the dynamo exporter,
which emits MatMul/Add/Tanh per step) are not recognised here.
"""

from __future__ import annotations

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "recurrent"
_FORMULA = {
    "lstm": "LSTM: c' = f⊙c + i⊙g, h' = o⊙tanh(c'); ℋ = p·(gated update)",
    "gru": "GRU: h' = (1−z)⊙n + z⊙h (Gibbs average of {update, keep})",
    "rnn_tanh": "RNN: h' = tanh(Wh + Ux + b); ℋ = p·(−h + tanh(·))",
    "rnn_relu": "RNN: h' = relu(Wh + Ux + b); ℋ = p·(−h + relu(·))",
}


def _kind(g: GraphIndex, i: int) -> str:
    op = g.nodes[i].op_type
    if op != "RNN":
        return op.lower()
    acts = [a.decode() if isinstance(a, bytes) else a for a in g.attr(i, "activations") or []]
    return "rnn_relu" if acts and acts[0].lower() == "relu" else "rnn_tanh"


def _check(g: GraphIndex, i: int) -> OnnxMatch:
    n = g.nodes[i]
    kind = _kind(g, i)
    direction = g.attr(i, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else str(direction)
    params = {"hidden": g.attr(i, "hidden_size"), "direction": direction,
              "layout": g.attr(i, "layout", 0)}
    xs = g.shape(n.input[0])
    if xs is not None:
        params["input"] = [d if d is not None else "?" for d in xs]
    acts = g.attr(i, "activations")
    if acts:
        params["activations"] = [a.decode() if isinstance(a, bytes) else a for a in acts]
    time_step = 1.0 if kind.startswith("rnn") else "1 per token; per-coordinate from the gates"
    cls = g.module_class(i)
    spec = HJSpec(
        path=g.block_path(i), kind=BlockKind.RECURRENT,
        hamiltonian=Hamiltonian(_FORMULA[kind], params), epsilon=1.0, time_step=time_step,
        exactness=Exactness.STRUCTURAL, evidence=(f"onnx.{n.op_type}",) + ((cls,) if cls else ()),
        notes=kind,
    )
    return OnnxMatch(NAME, spec, i, (i,), g.source((i,)))


class RecurrentRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        return [_check(g, i) for i, n in enumerate(g.nodes)
                if n.op_type in ("LSTM", "GRU", "RNN") and (n.domain or "") == ""
                and i not in claimed]


RULE = RecurrentRule()
