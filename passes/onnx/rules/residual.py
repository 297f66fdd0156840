"""Rule `residual`: Add(x, F(x)) where the skip operand x is an ancestor of the update F(x).

    x_{l+1} = x_l + h·F(x_l)   forward Euler of ẋ = ∂ℋ/∂p,  ℋ(x, p, θ) = p·F(x, θ),  h = 1

Deterministic (ε = 0); structural. Adds with a constant operand (biases) or of mismatched shapes
(broadcasts) are not candidates; an add of independent operands, or one whose update holds no
learned op (MatMul / Gemm / Conv / recurrent / attention), is a near-miss.
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


def _same_shape(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return True  # unknown: keep the candidate
    if len(a) != len(b):
        return False
    return all(x == y or x is None or y is None for x, y in zip(a, b, strict=True))


def _check(g: GraphIndex, i: int) -> OnnxMatch | NearMiss | None:
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
    else:
        return NearMiss(NAME, name, path, "add of independent operands (no skip path)")
    learned = _learned_between(g, update, skip)
    if learned is None:
        return NearMiss(NAME, name, path, "the update F(x) holds no learned op between the "
                        "skip and the add (elementwise, e.g. inside an activation)")
    f = g.module_path(learned) or g.name(learned)
    cls = g.module_class(i)
    spec = HJSpec(
        path=path, kind=BlockKind.RESIDUAL,
        hamiltonian=Hamiltonian("ℋ(x, p) = p·F(x, θ); x ← x + h·F(x)", {"F": f}),
        epsilon=0.0, time_step=1.0, exactness=Exactness.STRUCTURAL,
        evidence=("onnx.Add", f"onnx.{g.nodes[learned].op_type}") + ((cls,) if cls else ()),
        notes="forward Euler; co-state p_l = (I + h∂F/∂x)ᵀ p_{l+1} is backprop (exact)",
    )
    return OnnxMatch(NAME, spec, i, (i,), g.source((i,)))


class ResidualRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        found = [_check(g, i) for i, n in enumerate(g.nodes)
                 if n.op_type == "Add" and (n.domain or "") == "" and i not in claimed]
        return [f for f in found if f is not None]


RULE = ResidualRule()
