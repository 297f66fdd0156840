"""Rule `residual`: x + F(x) where the skip operand x is an input of the learned update F(x).

    x_{l+1} = x_l + h·F(x_l)   forward Euler of ẋ = ∂ℋ/∂p,  ℋ(x, p, θ) = p·F(x, θ),  h = 1

Deterministic (ε = 0); structural. An add whose operands are independent, or whose update holds
no learned map (e.g. x + 0.044715·x³ inside a GELU), is a near-miss — except the sum of the two
branches of a parallel residual x + F₁(x) + F₂(x) (GPT-J, GPT-NeoX), which is part of F.
"""

from __future__ import annotations

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import (
    is_param,
    module_class,
    module_path,
    op_name,
    shape,
    skip_passthrough,
)
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "residual"
_LEARNED = {
    "linear", "addmm", "mm", "bmm", "matmul", "conv1d", "conv2d", "conv3d", "convolution",
    "_convolution", "lstm", "gru", "rnn_tanh", "rnn_relu", "scaled_dot_product_attention",
    "einsum", "baddbmm", "embedding",
}


_VIEW = {"t", "numpy_T", "transpose", "permute", "to", "_to_copy", "view", "reshape", "contiguous"}


def _param_like(node: fx.Node, depth: int = 2) -> bool:
    """A parameter, possibly transposed / cast / reshaped (e.g. `x @ self.weight.T`)."""
    while depth >= 0:
        if is_param(node):
            return True
        if op_name(node) not in _VIEW or not isinstance(node.args[0], fx.Node):
            return False
        node, depth = node.args[0], depth - 1
    return False


def _learned_between(ctx: RuleContext, update: fx.Node, skip: fx.Node) -> fx.Node | None:
    """The first learned op on a path skip → … → update (None if F(x) is purely elementwise)."""
    start = ctx.index.order[skip]
    seen: set[fx.Node] = set()
    todo = [update]
    while todo:
        n = todo.pop()
        if n in seen or ctx.index.order.get(n, -1) <= start:
            continue
        seen.add(n)
        if op_name(n) in _LEARNED and any(_param_like(a) for a in n.all_input_nodes) \
                and ctx.index.depends_on(n, skip):
            return n
        todo.extend(n.all_input_nodes)
    return None


def _update_module(add_path: str, node: fx.Node) -> str:
    """The child module of the add's module that produced F(x) (best effort)."""
    path = module_path(node)
    prefix = f"{add_path}." if add_path else ""
    if not path.startswith(prefix) or path == add_path:
        return path or "(inline)"
    rest = path[len(prefix):].split(".")
    child = prefix + rest[0]
    if rest[0].isdigit() and len(rest) > 1:
        child += "." + rest[1]
    return child


def _check(ctx: RuleContext, node: fx.Node) -> Match | NoMatch | None:
    if len(node.args) < 2:
        return None
    a, b = node.args[0], node.args[1]
    out = shape(node)
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or out is None:
        return None
    if shape(a) != out or shape(b) != out or len(out) < 2:
        return None
    val = node.meta.get("val")
    if val is None or not val.is_floating_point():
        return None
    path = module_path(node)
    alpha = float(node.kwargs.get("alpha", 1.0))
    a0, b0 = skip_passthrough(a), skip_passthrough(b)  # a cast of the skip may come late
    if ctx.index.depends_on(b, a0):
        skip, update = a, b
    elif ctx.index.depends_on(a, b0):
        skip, update = b, a
    else:
        # operands from different modules (token + position embeddings) make a near-miss; an add
        # inside one module's own arithmetic (RoPE, unrolled scans) is no candidate at all
        if module_path(a0) == module_path(b0):  # type: ignore[arg-type]
            return None
        return NoMatch(NAME, node.name, path, "add of independent operands (no skip path)")
    if alpha != 1.0 and skip is not a:
        return NoMatch(NAME, node.name, path, f"the skip path itself is scaled (alpha={alpha})")
    learned = _learned_between(ctx, update, skip_passthrough(skip))
    if learned is None:
        return NoMatch(NAME, node.name, path,
                       "x + g(x) with no learned map in g (elementwise, not a residual block)")
    f_mod = _update_module(path, update)
    notes = "forward Euler; co-state p_l = (I + h∂F/∂x)ᵀ p_{l+1} is backprop (exact)"
    branches = _parallel_branches(ctx, update, skip_passthrough(skip))
    if branches is not None:
        f_mod = " + ".join(_update_module(path, b) for b in branches[1:])
        notes += ("; parallel residual: F(x) = F₁(x) + F₂(x), both branches read x "
                  "(x + attn(x) + mlp(x), GPT-J / GPT-NeoX)")
    spec = HJSpec(
        path=path or "(root)", kind=BlockKind.RESIDUAL,
        hamiltonian=Hamiltonian("ℋ = p·F(x); x ← x + h·F(x)", {"F": f_mod}),
        epsilon=0.0, time_step=alpha, exactness=Exactness.STRUCTURAL,
        evidence=(f"aten.{op_name(node)}", f"aten.{op_name(learned)}", module_class(node)),
        notes=notes,
    )
    skip_first = skip is a

    def make(s: HJSpec, skip_first: bool = skip_first, alpha: float = alpha):
        from hjplug.modules.residual import HJResidualStep

        return HJResidualStep(s, skip_first=skip_first, alpha=alpha)

    claims = frozenset({node, branches[0]} if branches else {node})  # the branch sum: in F
    return Match(NAME, spec, node, claims, (Rewrite(node, (skip, update)),), make)


def _parallel_branches(ctx: RuleContext, update: fx.Node, skip: fx.Node
                       ) -> tuple[fx.Node, fx.Node, fx.Node] | None:
    """(sum, F₁, F₂) when the update is F₁(x) + F₂(x) of two branches that each read the skip x
    and not each other (a parallel residual); None otherwise."""
    u = skip_passthrough(update)
    if not isinstance(u, fx.Node) or op_name(u) != "add" or len(u.args) < 2:
        return None
    f1, f2 = u.args[0], u.args[1]
    if not (isinstance(f1, fx.Node) and isinstance(f2, fx.Node)):
        return None
    dep = ctx.index.depends_on
    if not (dep(f1, skip) and dep(f2, skip)) or dep(f1, f2) or dep(f2, f1):
        return None
    if None in (_learned_between(ctx, f1, skip), _learned_between(ctx, f2, skip)):
        return None
    return u, f1, f2


class ResidualRule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        out: list[Match | NoMatch] = []
        for node in ctx.graph.nodes:
            if op_name(node) == "add" and node not in ctx.claimed:
                result = _check(ctx, node)
                if result is not None:
                    out.append(result)
        return out


RULE = ResidualRule()
