"""Rule `activation`: elementwise activations and their HJ reading.

    softplus = LSE_ε(z, 0) (ε = 1/β)   sigmoid = π₁ of {z, 0}   tanh = π₊ − π₋ of {z, −z}  (exact)
    relu = LSE_0(z, 0) = max(z, 0)       the tropical limit (exact, ε = 0)
    GELU, SiLU, … : no exact reading — reported as open, never dropped.
A parameter-free module made only of elementwise ops (e.g. a tanh-approximate GELU written out)
is read as one activation.
"""

from __future__ import annotations

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import module_class, module_path, op_name
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "activation"
_EXACT = {
    "softplus": ("softplus_ε(z) = LSE_ε(z, 0)", 1.0),
    "sigmoid": ("σ(z/ε) = π₁ of the atoms {z, 0}", 1.0),
    "tanh": ("tanh(z/ε) = π₊ − π₋ of the atoms {z, −z}", 1.0),
    "relu": ("max(z, 0) = LSE_0(z, 0) (tropical limit)", 0.0),
}
_OPEN = {"gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "hardswish", "hardsigmoid",
         "hardtanh", "relu6", "erf"}
_ELEMENTWISE = {
    "mul", "add", "sub", "div", "pow", "tanh", "erf", "sigmoid", "neg", "rsub", "exp", "to",
    "_to_copy", "_assert_tensor_metadata", "clone", "contiguous", "sqrt", "gelu", "silu",
    "softplus", "relu", "abs", "clamp", "minimum", "maximum", "where", "mish",
}


def _region_kind(ops: set[str]) -> str | None:
    """A written-out activation module: which known non-exact activation it is."""
    if "erf" in ops or ("tanh" in ops and "pow" in ops):
        return "gelu"
    if "sigmoid" in ops and "mul" in ops:
        return "silu" if "mul" in ops and len(ops & {"tanh", "pow", "erf"}) == 0 else None
    return None


_NAMES = {"gelu": "GELU", "silu": "SiLU", "mish": "Mish", "elu": "ELU", "selu": "SELU"}


def _has_children(ctx: RuleContext, path: str) -> bool:
    prefix = f"{path}."
    return any(p.startswith(prefix) for p in ctx.index.regions)


def _open_spec(path: str, op: str, evidence: tuple[str, ...]) -> HJSpec:
    return HJSpec(path=path, kind=BlockKind.ACTIVATION,
                  hamiltonian=Hamiltonian(f"{_NAMES.get(op, op)}: no exact reading", {"op": op}),
                  epsilon=None, time_step=None, exactness=Exactness.OPEN, evidence=evidence)


class ActivationRule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        out: list[Match | NoMatch] = []
        done_regions: set[str] = set()
        groups: dict[tuple[str, str], list[fx.Node]] = {}
        for node in ctx.graph.nodes:
            op = op_name(node)
            if node in ctx.claimed or (op not in _EXACT and op not in _OPEN):
                continue
            path = module_path(node)
            region = ctx.index.regions.get(path, [])
            ops = {op_name(n) for n in region}
            pure = bool(path) and ops <= _ELEMENTWISE and not _has_children(ctx, path)
            kind = _region_kind(ops) if pure else None
            if kind is not None:
                if path not in done_regions:
                    done_regions.add(path)
                    claims = frozenset(n for n in region if n not in ctx.claimed)
                    used = sorted(f"aten.{o}" for o in ops if o in _EXACT or o in _OPEN)
                    spec = _open_spec(path, kind, (*used, module_class(node)))
                    out.append(Match(NAME, spec, node, claims))
                continue
            key = path if pure else (f"{path}:{op}" if path else op)
            groups.setdefault((key, op), []).append(node)
        for (key, op), nodes in groups.items():
            evidence = (f"aten.{op}", module_class(nodes[0]))
            if op in _OPEN:
                out.append(Match(NAME, _open_spec(key, op, evidence), nodes[0], frozenset(nodes)))
                continue
            formula, eps = _EXACT[op]
            first = nodes[0]
            beta = first.args[1] if len(first.args) > 1 else first.kwargs.get("beta", 1.0)
            if op == "softplus" and beta not in (1, 1.0):
                eps = 1.0 / float(beta)
            spec = HJSpec(
                path=key, kind=BlockKind.ACTIVATION,
                hamiltonian=Hamiltonian(formula, {"op": op, "calls": len(nodes)}), epsilon=eps,
                time_step=None, exactness=Exactness.EXACT, evidence=evidence,
                notes="tropical limit of softplus_ε" if op == "relu" else "",
            )
            target = first.target
            if any(n.target != target or tuple(n.args[1:]) != tuple(first.args[1:])
                   or n.kwargs != first.kwargs for n in nodes):
                out.append(NoMatch(NAME, first.name, key, f"{op} called with differing arguments"))
                continue
            extra, kw = tuple(first.args[1:]), dict(first.kwargs)

            def make(s: HJSpec, op: str = op, target: object = target, extra: tuple = extra,
                     kw: dict = kw):
                from hjplug.modules.activation import HJActivationStep

                return HJActivationStep(s, op=op, target=target, args=extra, kwargs=kw)

            rewrites = tuple(Rewrite(n, (n.args[0],)) for n in nodes)
            out.append(Match(NAME, spec, first, frozenset(nodes), rewrites, make))
        return out


RULE = ActivationRule()
