"""Rule `lse`: `ReduceLogSumExp` and LogSoftmax / Softmax readouts (heads, routers, LSE layers).

    LSE_ε(z) = ε·log Σ_j exp(z_j/ε),   π = softmax(z/ε) = ∇LSE_ε,   H(p) = pᵀΣp (atoms = rows of W)
Exact; ε is the temperature: 1 unless the logits are divided (or multiplied) by a constant right
before, which joins the block (as does a constant Mul after a ReduceLogSumExp: ε·LSE(z/ε)).
A softmax between Q·Kᵀ and π·V that the attention rule left only for a Reshape it could not prove
keeps the key axis stays a near-miss (attention-shaped, not a readout). Any other the attention
rule left whose logits come, through elementwise / view ops only, from a MatMul of two computed
tensors (Gemma-2's soft-capped scores z = c·tanh(q·kᵀ/(c√d))) is structural, as in the FX pass:
π = ∇_z LSE(z) holds in the logits, but z is not affine in the input (no rows of W as atoms).
"""

from __future__ import annotations

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.passes.onnx.rules.attention_chain import unproven_reshape
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "lse"
_OPS = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "ReduceLogSumExp": "logsumexp"}
_FORMULA = {
    "softmax": "π = softmax(z/ε) = ∇LSE_ε(z); H(p) = pᵀΣp, atoms = rows of W",
    "log_softmax": "log π = z/ε − LSE(z/ε); H(p) = pᵀΣp, atoms = rows of W",
    "logsumexp": "LSE_ε(z) = ε·log Σ exp(z/ε); H(p) = pᵀΣp, atoms = rows of W",
}


_SCORES_FORMULA = ("π = softmax(z/ε) = ∇_z LSE_ε(z) over keys, z = f(q·kᵀ) not affine in the "
                   "input: no atoms = rows of W")
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Neg", "Tanh", "Sigmoid", "Clip", "Min", "Max",
                "Where", "Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                "Expand", "Dropout"}
_VIEWS = {"Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}


def _weight(g: GraphIndex, value: str) -> bool:
    """A constant, also through views (a tied embedding transposed in the graph)."""
    for _ in range(4):
        if g.is_constant(value):
            return True
        n = g.node_of(value)
        if n is None or n.op_type not in _VIEWS:
            return False
        value = n.input[0]
    return False


def _attention_scores(g: GraphIndex, z: str, limit: int = 24) -> str | None:
    """'onnx.MatMul of two computed tensors (q·kᵀ) through onnx.Tanh, …' when the logits `z`
    come, through elementwise / view ops only, from a contraction of two computed tensors;
    None otherwise (a readout: x·W with a weight W)."""
    todo, parent = [z], {z: ""}
    while todo and len(parent) < limit:
        value = todo.pop(0)
        j = g.producer_of(value)
        if j is None:
            continue
        n = g.nodes[j]
        if n.op_type in ("MatMul", "Einsum") and len(n.input) == 2:
            if any(_weight(g, x) for x in n.input):
                continue
            via, cur = [], parent[value]
            while cur:
                op = g.op(cur)
                if op not in _VIEWS:
                    via.append(f"onnx.{op}")
                cur = parent[cur]
            return f"onnx.{n.op_type} of two computed tensors (q·kᵀ)" + (
                f" through {', '.join(dict.fromkeys(via))}" if via else "")
        if n.op_type not in _ELEMENTWISE:
            continue
        for x in n.input:
            if x and x not in parent and not g.is_constant(x):
                parent[x] = value
                todo.append(x)
    return None


def _scaling(g: GraphIndex, j: int | None, claimed: set[int]) -> float | None:
    """The factor a Mul/Div node j applies to its non-constant operand (None: not a scaling)."""
    if j is None or j in claimed:
        return None
    n = g.nodes[j]
    if n.op_type == "Div" and (c := g.scalar(n.input[1])):
        return 1.0 / c
    if n.op_type == "Mul":
        c = g.scalar(n.input[1])
        c = c if c is not None else g.scalar(n.input[0])
        return c or None
    return None


def _axes(g: GraphIndex, i: int) -> list[int] | None:
    n = g.nodes[i]
    if n.op_type != "ReduceLogSumExp":
        return [g.attr(i, "axis", -1 if g.opsets.get("", 13) >= 13 else 1)]
    if len(n.input) > 1 and n.input[1]:
        c = g.constant(n.input[1])
        return None if c is None else [int(a) for a in c.reshape(-1)]
    axes = g.attr(i, "axes")
    return list(axes) if axes is not None else None


def _check(g: GraphIndex, i: int, claimed: set[int]) -> OnnxMatch | NearMiss:
    n = g.nodes[i]
    op = _OPS[n.op_type]
    name, path = g.name(i), g.block_path(i)
    z = n.input[0]
    axes = _axes(g, i)
    zs = g.shape(z)
    if axes is not None and len(axes) > 1:
        return NearMiss(NAME, name, path, f"{n.op_type} over several axes {axes}")
    if op == "softmax" and (why := unproven_reshape(g, i, claimed)):
        return NearMiss(NAME, name, path, "attention-shaped softmax (Q·Kᵀ → softmax → π·V), "
                        f"not an exact readout with ε = 1; not read as attention: {why}")
    nodes, eps, notes = [i], 1.0, "ε = 1 (unscaled logits)"
    pre = g.producer_of(z)
    s = _scaling(g, pre, claimed)
    if s is not None and s > 0 and len(g.users(z)) == 1 and pre is not None:
        nodes.insert(0, pre)
        eps, notes = 1.0 / s, "temperature from the logit scaling"
    users = g.users(n.output[0])
    if op == "logsumexp" and len(users) == 1 and _scaling(g, users[0], claimed) is not None:
        nodes.append(users[0])
        notes += "; ε·LSE post-scaling joined"
    atoms = None
    if zs is not None and axes:
        d = zs[axes[0]] if -len(zs) <= axes[0] < len(zs) else None
        atoms = d if isinstance(d, int) else None
    scores = _attention_scores(g, z)
    if scores is not None:  # a Gibbs average over keys the attention rule did not read
        notes = (f"softmax over attention scores ({scores}), not a readout of a linear layer: "
                 f"exact in the logits only, structural in the input; {notes}")
    cls = g.module_class(i)
    spec = HJSpec(
        path=path, kind=BlockKind.LSE,
        hamiltonian=Hamiltonian(_FORMULA[op] if scores is None else _SCORES_FORMULA,
                                {"op": op, "atoms": atoms}),
        epsilon=eps, time_step=None,
        exactness=Exactness.EXACT if scores is None else Exactness.STRUCTURAL,
        evidence=(f"onnx.{n.op_type}",) + ((cls,) if cls else ()), notes=notes,
    )
    return OnnxMatch(NAME, spec, i, tuple(nodes), g.source(tuple(nodes)))


class LSERule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        out: list[OnnxMatch | NearMiss] = []
        for i, n in enumerate(g.nodes):
            if n.op_type in _OPS and (n.domain or "") == "" and i not in claimed:
                found = _check(g, i, claimed)
                if isinstance(found, OnnxMatch):
                    claimed.update(found.nodes)
                out.append(found)
        return out


RULE = LSERule()
