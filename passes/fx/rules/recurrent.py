"""Rule `recurrent`: fused aten.lstm / gru / rnn_tanh / rnn_relu ops (and their *_cell forms, one
block per nn.*Cell module) and hand-written gated cells.

    RNN  h' = tanh(W h + U x + b):  Euler step (Δt = 1) of ḣ = −h + tanh(·)
    LSTM / GRU: gated Euler steps; σ gates = 2-atom Gibbs weights (ε = 1)
Structural. A hand-written cell is a module whose own code gates with σ outputs (a mul by a sigmoid)
and uses tanh; its gates become evaluations of one HJRecurrentStep.
"""

from __future__ import annotations

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import module_class, module_path, op_name, shape
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "recurrent"
_FUSED = {
    "lstm": "LSTM: c' = f⊙c + i⊙g, h' = o⊙tanh(c'); ℋ = p·(gated update)",
    "gru": "GRU: h' = (1−z)⊙n + z⊙h (Gibbs average of {update, keep})",
    "rnn_tanh": "RNN: h' = tanh(Wh + Ux + b); ℋ = p·(−h + tanh(·))",
    "rnn_relu": "RNN: h' = relu(Wh + Ux + b); ℋ = p·(−h + relu(·))",
}
_CELL = "gated cell: h' = gates ⊙ candidates; σ gates = 2-atom Gibbs weights"
_CELL_OPS = {  # one step per call: nn.LSTMCell / GRUCell / RNNCell in a Python loop
    "lstm_cell": _FUSED["lstm"], "gru_cell": _FUSED["gru"],
    "rnn_tanh_cell": _FUSED["rnn_tanh"], "rnn_relu_cell": _FUSED["rnn_relu"],
}


def _fused(node: fx.Node, kind: str) -> Match:
    from hjplug.modules.recurrent import HJRecurrentStep

    args = node.args
    # aten.lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    #                 batch_first)
    params = {}
    if len(args) >= 9:
        params = {"layers": args[4], "bidirectional": bool(args[7]), "batch_first": bool(args[8])}
    out = shape(node.args[0]) if node.args else None
    if out is not None:
        params["input"] = list(out)
    time_step = 1.0 if kind.startswith("rnn") else "1 per token; per-coordinate from the gates"
    spec = HJSpec(
        path=module_path(node) or "(root)", kind=BlockKind.RECURRENT,
        hamiltonian=Hamiltonian(_FUSED[kind], params), epsilon=1.0, time_step=time_step,
        exactness=Exactness.STRUCTURAL, evidence=(f"aten.{kind}", module_class(node)),
        notes=kind,
    )
    target = node.target
    return Match(NAME, spec, node, frozenset({node}), (Rewrite(node, tuple(node.args)),),
                 lambda s: HJRecurrentStep(s, target=target))


def _fused_cells(ctx: RuleContext) -> list[Match | NoMatch]:
    """aten.<kind>_cell calls grouped by module (one nn.*Cell): one block, each call a step."""
    from hjplug.modules.recurrent import HJRecurrentStep

    groups: dict[tuple[str, str], list[fx.Node]] = {}
    for node in ctx.graph.nodes:
        kind = op_name(node)
        if kind in _CELL_OPS and node not in ctx.claimed:
            groups.setdefault((module_path(node) or "(root)", kind), []).append(node)
    out: list[Match | NoMatch] = []
    for (path, kind), nodes in groups.items():
        first = nodes[0]
        if any(n.target != first.target for n in nodes):
            out.append(NoMatch(NAME, first.name, path, f"aten.{kind} calls of differing overloads"))
            continue
        params = {"calls": len(nodes), "bias": len(first.args) > 4 and first.args[4] is not None}
        spec = HJSpec(
            path=path, kind=BlockKind.RECURRENT, hamiltonian=Hamiltonian(_CELL_OPS[kind], params),
            epsilon=1.0, time_step="1 per call" if kind.startswith("rnn") else
            "1 per call; per-coordinate from the gates", exactness=Exactness.STRUCTURAL,
            evidence=(f"aten.{kind}", module_class(first)), notes=kind,
        )
        target = first.target
        out.append(Match(NAME, spec, first, frozenset(nodes),
                         tuple(Rewrite(n, tuple(n.args), dict(n.kwargs)) for n in nodes),
                         lambda s, t=target: HJRecurrentStep(s, target=t)))
    return out


_VIEWS = {"getitem", "chunk", "split", "split_with_sizes", "unbind", "slice", "select", "view",
          "reshape", "to", "_to_copy", "contiguous", "clone"}


def _from_gate(x: object, gates: list[fx.Node], depth: int = 4) -> bool:
    """x is a σ gate output, possibly through a split / view / cast (depth-bounded)."""
    while isinstance(x, fx.Node) and depth >= 0:
        if x in gates:
            return True
        if op_name(x) not in _VIEWS or not x.args:
            return False
        x, depth = x.args[0], depth - 1
    return False


def _cells(ctx: RuleContext) -> list[Match | NoMatch]:
    """Innermost modules whose own region gates with a sigmoid and that use tanh."""
    out: list[Match | NoMatch] = []
    paths = sorted(ctx.index.regions, key=lambda p: -p.count(".") - (p != ""))
    for path in paths:
        own = ctx.index.regions[path]
        prefix = f"{path}." if path else ""
        subtree = [n for p, ns in ctx.index.regions.items()
                   if p == path or p.startswith(prefix) for n in ns]
        gates = [n for n in subtree if op_name(n) in ("sigmoid", "tanh") and n not in ctx.claimed]
        sig = [n for n in gates if op_name(n) == "sigmoid"]
        if not sig:
            continue
        gating = [n for n in own if op_name(n) == "mul" and any(_from_gate(a, sig) for a in n.args)]
        has_tanh = any(op_name(n) == "tanh" for n in gates)
        if not gating:
            continue
        if not has_tanh:
            out.append(NoMatch(NAME, gating[0].name, path,
                               "sigmoid gating without a tanh candidate (not a recurrent cell)"))
            continue
        spec = HJSpec(
            path=path or "(root)", kind=BlockKind.RECURRENT,
            hamiltonian=Hamiltonian(_CELL, {"gates": len(sig), "tanh": len(gates) - len(sig)}),
            epsilon=1.0, time_step="1 per call; per-coordinate from the gates",
            exactness=Exactness.STRUCTURAL,
            evidence=("aten.sigmoid", "aten.tanh", "aten.mul", ctx.index.classes.get(path, "")),
            notes=f"hand-written cell, {len(gates)} gate evaluations",
        )
        rewrites = tuple(Rewrite(g, (g.args[0],), {"gate": op_name(g)}) for g in gates)

        def make(s: HJSpec):
            from hjplug.modules.recurrent import HJRecurrentStep

            return HJRecurrentStep(s)

        out.append(Match(NAME, spec, gates[0], frozenset(gates), rewrites, make))
        ctx.claimed.update(gates)
    return out


class RecurrentRule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        out: list[Match | NoMatch] = []
        for node in ctx.graph.nodes:
            kind = op_name(node)
            if kind in _FUSED and node not in ctx.claimed:
                out.append(_fused(node, kind))
        cells = _fused_cells(ctx)
        ctx.claimed.update(n for m in cells if isinstance(m, Match) for n in m.claims)
        return out + cells + _cells(ctx)


RULE = RecurrentRule()
