"""Rule `lse`: log-sum-exp and softmax readouts (LM / classifier heads, MoE routers, LSE layers).

    LSE_ε(z) = ε·log Σ_j exp(z_j/ε),   π = softmax(z/ε) = ∇LSE_ε,   H(p) = pᵀΣp (atoms = rows of W)
Exact; ε is the temperature: 1 unless the logits are divided (or multiplied) by a constant, and
for ε·logsumexp(z/ε) layers the recorded pre/post scaling.
"""

from __future__ import annotations

from typing import Any

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import module_class, module_path, op_name, shape
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "lse"
_OPS = {"softmax": "softmax", "_softmax": "softmax", "log_softmax": "log_softmax",
        "_log_softmax": "log_softmax", "logsumexp": "logsumexp"}
_FORMULA = {
    "softmax": "π = softmax(z/ε) = ∇LSE_ε(z); H(p) = pᵀΣp, atoms = rows of W",
    "log_softmax": "log π = z/ε − LSE(z/ε); H(p) = pᵀΣp, atoms = rows of W",
    "logsumexp": "LSE_ε(z) = ε·log Σ exp(z/ε); H(p) = pᵀΣp, atoms = rows of W",
}


def _scalar(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


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
    scaler = z.args[1] if op_name(z) in ("div", "mul") and len(z.args) > 1 else None
    if not pre and isinstance(scaler, fx.Node):  # a runtime temperature (e.g. a learned one)
        notes = (f"logits {op_name(z)} by the tensor {scaler.name} (a runtime temperature): "
                 "ε = 1 is relative to the already scaled logits")
    spec = HJSpec(
        path=path or "(root)", kind=BlockKind.LSE,
        hamiltonian=Hamiltonian(_FORMULA[op], {"op": op, "atoms": (shape(z) or (0,))[dim]}),
        epsilon=eps, time_step=None, exactness=Exactness.EXACT,
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
