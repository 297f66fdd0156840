"""Rule `residual`: Add(x, F(x)) where the skip operand x is an ancestor of the update F(x).

    x_{l+1} = x_l + h·F(x_l)   forward Euler of ẋ = ∂ℋ/∂p,  ℋ(x, p, θ) = p·F(x, θ),  h = 1

Deterministic (ε = 0); structural. Adds with a constant operand (biases) or of mismatched shapes
(broadcasts) are not candidates; an add of independent operands, or one whose update holds no
learned op (MatMul / Gemm / Conv / recurrent / attention), is a near-miss — except the sum of the
two branches of a parallel residual x + F₁(x) + F₂(x) (GPT-J, GPT-NeoX), which is part of F and
joins the block, as the FX rule `residual` reads it. F is named, as in FX, by the child module of
the add's module that computes it (else by the module of its learned op).
"""

from __future__ import annotations

from hjplug.passes.onnx.graph import LEARNED_OPS, GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "residual"


def _learned_between(g: GraphIndex, update: str, skip: str) -> int | None:
    """The last learned op on a path skip → … → update (None if F(x) is elementwise only)."""
    u = g.producer_of(update)
    if u is None:
        return None
    s = g.producer_of(skip)
    path = ({u} | g.upstream(u, stop=-1 if s is None else s + 1)) & g.downstream(skip, stop=u)
    for j in sorted(path, reverse=True):
        if g.nodes[j].op_type in LEARNED_OPS or g.nodes[j].domain == "hjplug":
            return j
    return None


def _update_module(g: GraphIndex, add_path: str, update: str, learned: int) -> str:
    """The child module of the add's module `add_path` that computes `update` (the FX rule's
    naming; the module of the learned op when the update's own node names none)."""
    prefix = f"{add_path}." if add_path else ""
    for j in (g.producer_of(update), learned):
        path = g.module_path(j) if j is not None else ""
        if path.startswith(prefix) and path != add_path:
            rest = path[len(prefix):].split(".")
            child = prefix + rest[0]
            return child + f".{rest[1]}" if rest[0].isdigit() and len(rest) > 1 else child
    return g.module_path(learned) or g.name(learned)


def _parallel_branches(g: GraphIndex, update: str, skip: str, claimed: set[int]
                       ) -> tuple[int, tuple[str, int], tuple[str, int]] | None:
    """(sum node, (F₁, its learned op), (F₂, its learned op)) when the update is F₁(x) + F₂(x)
    of two branches that each read the skip x through a learned op and not each other (a
    parallel residual); None otherwise."""
    j = g.producer_of(g.skip_passthrough(update))
    if j is None or j in claimed:
        return None
    n = g.nodes[j]
    if n.op_type != "Add" or (n.domain or "") != "" or len(n.input) != 2:
        return None
    f1, f2 = n.input
    dep = g.value_depends_on
    if not (dep(f1, skip) and dep(f2, skip)) or dep(f1, f2) or dep(f2, f1):
        return None
    l1, l2 = _learned_between(g, f1, skip), _learned_between(g, f2, skip)
    if l1 is None or l2 is None:
        return None
    return j, (f1, l1), (f2, l2)


def _own_arithmetic(g: GraphIndex, a: str, b: str) -> bool:
    """Both operands computed by one (named) module: an add inside that module's own arithmetic
    (RoPE, unrolled scans), which the FX rule does not count as a candidate. Graphs without
    module paths (hand-built ones) keep the near-miss."""
    pa, pb = g.producer_of(a), g.producer_of(b)
    if pa is None or pb is None:
        return False
    path = g.module_path(pa)
    return bool(path) and path == g.module_path(pb)


def _same_shape(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return True  # unknown: keep the candidate
    if len(a) != len(b):
        return False
    return all(x == y or x is None or y is None for x, y in zip(a, b, strict=True))


def _check(g: GraphIndex, i: int, claimed: set[int]) -> OnnxMatch | NearMiss | None:
    n = g.nodes[i]
    if len(n.input) != 2 or g.is_constant(n.input[0]) or g.is_constant(n.input[1]):
        return None
    a, b = n.input
    if g.is_float(n.output[0]) is False or not _same_shape(g.shape(a), g.shape(b)):
        return None
    shape = g.shape(n.output[0])
    if shape is not None and len(shape) < 2:
        return None
    name, path = g.name(i), g.block_path(i)
    a0, b0 = g.skip_passthrough(a), g.skip_passthrough(b)
    if g.value_depends_on(b, a0):
        skip, update = a0, b
    elif g.value_depends_on(a, b0):
        skip, update = b0, a
    elif _own_arithmetic(g, a0, b0):
        return None  # e.g. RoPE's q·cos + rotate(q)·sin: no candidate at all, as in FX
    else:
        return NearMiss(NAME, name, path, "add of independent operands (no skip path)")
    learned = _learned_between(g, update, skip)
    if learned is None:
        return NearMiss(NAME, name, path, "the update F(x) holds no learned op between the "
                        "skip and the add (elementwise, e.g. inside an activation)")
    add_path = g.module_path(i)
    f = _update_module(g, add_path, update, learned)
    notes = "forward Euler; co-state p_l = (I + h∂F/∂x)ᵀ p_{l+1} is backprop (exact)"
    nodes: tuple[int, ...] = (i,)
    branches = _parallel_branches(g, update, skip, claimed)
    if branches is not None:  # the branch sum is part of F: it joins the block
        j, *pair = branches
        f = " + ".join(_update_module(g, add_path, v, k) for v, k in pair)
        notes += ("; parallel residual: F(x) = F₁(x) + F₂(x), both branches read x "
                  "(x + attn(x) + mlp(x), GPT-J / GPT-NeoX)")
        nodes = (j, i)
    cls = g.module_class(i)
    spec = HJSpec(
        path=path, kind=BlockKind.RESIDUAL,
        hamiltonian=Hamiltonian("ℋ(x, p) = p·F(x, θ); x ← x + h·F(x)", {"F": f}),
        epsilon=0.0, time_step=1.0, exactness=Exactness.STRUCTURAL,
        evidence=("onnx.Add", f"onnx.{g.nodes[learned].op_type}") + ((cls,) if cls else ()),
        notes=notes,
    )
    return OnnxMatch(NAME, spec, i, nodes, g.source(nodes))


class ResidualRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        out: list[OnnxMatch | NearMiss] = []
        for i, n in enumerate(g.nodes):
            if n.op_type == "Add" and (n.domain or "") == "" and i not in claimed:
                found = _check(g, i, claimed)
                if isinstance(found, OnnxMatch):
                    claimed.update(found.nodes)
                if found is not None:
                    out.append(found)
        claimed_names = {g.name(k) for k in claimed}  # a branch sum read as a near-miss first
        return [f for f in out if isinstance(f, OnnxMatch) or f.node not in claimed_names]


RULE = ResidualRule()
