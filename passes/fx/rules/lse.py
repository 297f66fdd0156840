"""Rule `lse`: log-sum-exp and softmax readouts (LM / classifier heads, MoE routers, LSE layers).

    LSE_ε(z) = ε·log Σ_j exp(z_j/ε),   π = softmax(z/ε) = ∇LSE_ε,   H(p) = pᵀΣp (atoms = rows of W)
Exact; ε is the temperature: 1 unless the logits are divided (or multiplied) by a constant, and
for ε·logsumexp(z/ε) layers the recorded pre/post scaling.

A softmax the attention rule left (e.g. Gemma-2's soft-capped scores z = c·tanh(q·kᵀ/(c√d)))
is structural, not an exact readout: π = softmax(z) = ∇_z LSE(z) holds in the logits, but
z = f(q·kᵀ) comes from a product of two activations, so it is not affine in the input (no
fixed W whose rows are the atoms) and H(p) = pᵀΣp does not describe it.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import module_class, module_path, op_name, shape
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.passes.fx.rules.attention import (
    _CAST,
    _CONTRACT,
    _GATE_OPS,
    _SHAPE,
    _VIEWS,
    _activation_like,
)
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "lse"
_OPS = {"softmax": "softmax", "_softmax": "softmax", "log_softmax": "log_softmax",
        "_log_softmax": "log_softmax", "logsumexp": "logsumexp"}
_FORMULA = {
    "softmax": "π = softmax(z/ε) = ∇LSE_ε(z); H(p) = pᵀΣp, atoms = rows of W",
    "log_softmax": "log π = z/ε − LSE(z/ε); H(p) = pᵀΣp, atoms = rows of W",
    "logsumexp": "LSE_ε(z) = ε·log Σ exp(z/ε); H(p) = pᵀΣp, atoms = rows of W",
}


_ELEMENTWISE = _GATE_OPS | _CAST | _SHAPE | _VIEWS | {"sin", "cos", "clamp", "clamp_min",
                                                     "clamp_max"}
_SCORES_FORMULA = ("π = softmax(z/ε) = ∇_z LSE_ε(z) over keys, z = f(q·kᵀ) not affine in the "
                   "input: no atoms = rows of W")


def _scalar(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _attention_scores(z: fx.Node, limit: int = 24) -> str | None:
    """'aten.<op> of two activations (q·kᵀ) through aten.tanh, …' when the logits z come, through
    elementwise / shape ops only, from a contraction of two computed tensors (attention scores),
    not of an input with a weight W; None otherwise (a readout)."""
    todo: list[fx.Node] = [z]
    parent: dict[fx.Node, fx.Node | None] = {z: None}
    while todo and len(parent) < limit:
        n = todo.pop(0)
        if n.op != "call_function":
            continue
        name = op_name(n)
        if name not in _CONTRACT:
            if name not in _ELEMENTWISE:  # a weight (linear, conv, …) or a reduction: a readout
                continue
            for a in n.all_input_nodes:
                if a not in parent:
                    parent[a] = n
                    todo.append(a)
            continue
        args = n.args[1] if name == "einsum" and len(n.args) == 2 and isinstance(
            n.args[1], list | tuple) else n.args[1:] if name == "einsum" else n.args[:3]
        ops = [a for a in args if isinstance(a, fx.Node)]  # einsum(eq, [q, k]) or (eq, q, k)
        ops = ops[1:] if name == "baddbmm" else ops  # baddbmm(bias, q, kᵀ)
        if len(ops) < 2 or not all(_activation_like(a) for a in ops[:2]):
            continue
        via, cur = [], parent[n]
        while cur is not None:  # the ops between q·kᵀ and the softmax, in graph order
            if op_name(cur) not in ("to", "_to_copy", "view", "clone", "contiguous"):
                via.append(f"aten.{op_name(cur)}")
            cur = parent[cur]
        return f"aten.{name} of two activations (q·kᵀ)" + (
            f" through {', '.join(dict.fromkeys(via))}" if via else "")
    return None


def _check(node: fx.Node) -> Match | NoMatch:
    from hjplug.modules.lse import HJLSEStep

    op = _OPS[op_name(node)]
    path = module_path(node)
    z = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", -1)
    if isinstance(dim, list | tuple):
        if len(dim) != 1:
            return NoMatch(NAME, node.name, path, f"logsumexp over several dims {dim}")
        dim = dim[0]
    if not isinstance(z, fx.Node) or shape(z) is None:
        return NoMatch(NAME, node.name, path, f"{op} of an input without a static shape")
    pre = post = None
    eps = 1.0
    src = z
    scale = _scalar(z.args[1]) if op_name(z) in ("div", "mul") and len(z.args) > 1 else None
    if scale is not None and scale > 0 and len(z.users) == 1:  # a temperature is > 0
        pre = (op_name(z), scale)
        eps = scale if op_name(z) == "div" else 1.0 / scale
        src = z.args[0]
    anchor = node
    users = list(node.users)
    if (op == "logsumexp" and len(users) == 1 and op_name(users[0]) == "mul"
            and _scalar(users[0].args[1]) is not None):
        post = ("mul", _scalar(users[0].args[1]))
        anchor = users[0]
    notes = "temperature from the logit scaling" if pre else "ε = 1 (unscaled logits)"
    scores = _attention_scores(src)
    scaler = z.args[1] if op_name(z) in ("div", "mul") and len(z.args) > 1 else None
    if not pre and isinstance(scaler, fx.Node):  # a runtime temperature (e.g. a learned one)
        notes = (f"logits {op_name(z)} by the tensor {scaler.name} (a runtime temperature): "
                 "ε = 1 is relative to the already scaled logits")
    if scores is not None:  # a Gibbs average over keys the attention rule did not read
        notes = (f"softmax over attention scores ({scores}), not a readout of a linear layer: "
                 f"exact in the logits only, structural in the input; {notes}")
    formula = _FORMULA[op] if scores is None else _SCORES_FORMULA
    spec = HJSpec(
        path=path or "(root)", kind=BlockKind.LSE,
        hamiltonian=Hamiltonian(formula, {"op": op, "atoms": (shape(z) or (0,))[dim]}),
        epsilon=eps, time_step=None,
        exactness=Exactness.EXACT if scores is None else Exactness.STRUCTURAL,
        evidence=(f"aten.{op_name(node)}", module_class(node)), notes=notes,
    )
    target, extra, kw = node.target, tuple(node.args[1:]), dict(node.kwargs)
    claims = frozenset(x for x in (node, anchor, z if pre else None) if x is not None)

    def make(s: HJSpec):
        return HJLSEStep(s, op=op, target=target, args=extra, dim=dim, pre=pre, post=post,
                         kwargs=kw)

    return Match(NAME, spec, node, claims, (Rewrite(anchor, (src,)),), make)


class LSERule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        return [_check(n) for n in ctx.graph.nodes
                if op_name(n) in _OPS and n not in ctx.claimed]


RULE = LSERule()
