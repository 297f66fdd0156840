"""Rule `attention`: Softmax(MatMul(Q, Kᵀ)·scale + mask)·V chains, in all the usual orders.

    π = softmax(s·q kᵀ + B),  out = π v,   ε = 1/s

Div or Mul by a constant scale, mask Add (or Where) before or after the scale, the scale on q
and/or k before the MatMul (√s on each, as exported SDPA does), Kᵀ by a Transpose anywhere or
pre-transposed; Cast / Dropout / the NaN guard Where(IsNaN(π), 0, π) between the softmax and
the value MatMul; Einsum in place of either MatMul. A constant scale with one value per head
(shape (…, H, 1, 1)) gives one ε per head. A Reshape on either side of the softmax (Bloom's
(b·h, q, k) ↔ (b, h, q, k) views around its ALiBi baddbmm) is read through only when it is
proven to keep the key axis last (`GraphIndex.keeps_last_axis`); else the block is a near-miss
that says so. Exact (paper-notes §4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.passes.onnx.rules.attention_params import heads_of, number, query_prescale
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "attention"
FORMULA = "H(p) = pᵀΣp per head; atoms W_j = M·x_j, M = W_Q W_Kᵀ"
_PASS = {"Cast", "Identity"}
_POST = {"Cast", "Identity", "Dropout"}
_CHAIN = {"Add", "Mul", "Div", "Where", "Cast", "Identity"}
_CONTRACT = {"MatMul", "Einsum"}
_UNPROVEN = "not proven to keep the key axis last"


def spec(path: str, eps: float | tuple[float, ...] | None, params: dict, evidence: tuple[str, ...],
         notes: list[str]) -> HJSpec:
    """The HJSpec of one attention step (shared with the fused-op rules)."""
    return HJSpec(path=path, kind=BlockKind.ATTENTION,
                  hamiltonian=Hamiltonian(FORMULA, params), epsilon=eps, time_step=None,
                  exactness=Exactness.EXACT, evidence=evidence, notes="; ".join(notes))


def _reaches_qk(g: GraphIndex, value: str, depth: int = 8) -> bool:
    """Does `value` come (through mask / scale / cast ops) from a MatMul of two non-constants?"""
    n = g.node_of(value)
    while n is not None and depth > 0:
        if n.op_type in _CONTRACT:
            return len(n.input) == 2 and not any(g.is_constant(x) for x in n.input)
        if n.op_type == "Reshape":
            value, n, depth = n.input[0], g.node_of(n.input[0]), depth - 1
            continue
        if n.op_type not in _CHAIN:
            return False
        nxt = [x for x in (n.input[1:] if n.op_type == "Where" else n.input) if x]
        nxt = [x for x in nxt if not g.is_constant(x)]
        if not nxt:
            return False
        value = next((x for x in nxt if _reaches_qk(g, x, depth - 1)), nxt[0])
        n, depth = g.node_of(value), depth - 1
    return False


def _operand_scale(g: GraphIndex, value: str, claimed: set[int]) -> tuple[float, list[int]]:
    """A constant scale applied to q or k right before the MatMul (through one Transpose)."""
    nodes: list[int] = []
    for _ in range(2):
        i = g.producer_of(value)
        if i is None or i in claimed or len(g.users(value)) != 1:
            break
        n = g.nodes[i]
        if n.op_type == "Transpose" and not nodes:
            nodes.append(i)
            value = n.input[0]
            continue
        if n.op_type in ("Mul", "Div"):
            c = number(g, n.input[1])
            if c is None and n.op_type == "Mul":
                c = number(g, n.input[0])
            if c is not None and c != 0:
                return (c if n.op_type == "Mul" else 1.0 / c), [*nodes, i]
        break
    return 1.0, []


def _nan_guard(g: GraphIndex, p: str, claimed: set[int]) -> list[int]:
    """[IsNaN, Where] of a safe softmax: Where(IsNaN(π), 0, π) (exported SDPA), else []."""
    users = g.users(p)
    if len(users) != 2 or any(u in claimed for u in users):
        return []
    isnan = next((u for u in users if g.nodes[u].op_type == "IsNaN"), None)
    where = next((u for u in users if g.nodes[u].op_type == "Where"), None)
    if isnan is None or where is None:
        return []
    w = g.nodes[where]
    ok = w.input[0] == g.nodes[isnan].output[0] and w.input[2] == p and g.scalar(w.input[1]) == 0
    return [isnan, where] if ok and len(g.users(w.input[0])) == 1 else []


def _factor(g: GraphIndex, value: str) -> float | np.ndarray | None:
    """A constant scale factor: a number (also one computed from shapes only), or one per head
    (a constant whose only non-1 axis is the head axis −3 of the (…, heads, q, k) scores), else
    None."""
    c = number(g, value)
    if c is not None:
        return c
    arr = g.constant(value)
    if arr is None or arr.ndim < 3 or not np.issubdtype(arr.dtype, np.floating):
        return None
    if any(d != 1 for k, d in enumerate(arr.shape) if k != arr.ndim - 3):
        return None
    return arr.reshape(-1).astype(np.float64)


@dataclass
class _Walk:
    """What the backward walk from the softmax found."""

    chain: list[int] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)
    # per additive bias (Add): the product of the constant Mul / Div between its Add and the
    # softmax, i.e. the factor it enters the logits with (None after a run-time scale)
    factors: list[float | np.ndarray | None] = field(default_factory=list)
    scale: float | np.ndarray = 1.0
    runtime_scale: bool = False
    qk: int = -1
    prescale: float | None = None  # s₀ of a query scaled before its head split (in `scale`)


def _forward(g: GraphIndex, out: str, claimed: set[int],
             trust: bool = False) -> tuple[list[int], int] | str:
    """softmax → (Cast / Dropout / NaN guard)* → MatMul(π, V): (post nodes, pv) or a reason."""
    post: list[int] = []
    while len(post) < 6:
        users = g.users(out)
        pv = next((u for u in users if g.nodes[u].op_type in _CONTRACT and u not in claimed
                   and g.nodes[u].input[0] == out), None)
        if pv is not None:
            return post, pv
        guard = _nan_guard(g, out, claimed)
        step = next((u for u in users if g.nodes[u].op_type in _POST and u not in claimed), None)
        view = next((u for u in users if g.nodes[u].op_type == "Reshape" and u not in claimed
                     and g.nodes[u].input[0] == out), None)
        if view is not None and len(users) == 1 and not (trust or g.keeps_last_axis(view)):
            return (f"softmax weights pass through Reshape {g.name(view)}, {_UNPROVEN} (it "
                    "may mix keys with queries or heads)")
        if view is not None and len(users) == 1:
            step = view
        if guard:
            post += guard
        elif step is not None and len(users) == 1:
            post.append(step)
        else:
            break
        out = g.nodes[post[-1]].output[0]
    return "softmax weights are not contracted with values by a MatMul(π, V) (a readout?)"


def _backward(g: GraphIndex, value: str, claimed: set[int], trust: bool = False
              ) -> _Walk | str:
    """softmax input → (Add mask | Where | Mul/Div scale | Cast)* → MatMul(Q, Kᵀ)."""
    w = _Walk()
    for _ in range(12):
        j = g.producer_of(value)
        if j is None:
            return f"softmax of graph input '{value}', not of scores"
        n = g.nodes[j]
        if j in claimed:
            return f"scores come from {g.name(j)}, already claimed"
        if n.op_type in _CONTRACT:
            w.qk = j
            return w
        w.chain.append(j)
        if n.op_type in _PASS:
            value = n.input[0]
        elif n.op_type == "Reshape":
            if not (trust or g.keeps_last_axis(j)):
                return (f"scores pass through Reshape {g.name(j)}, {_UNPROVEN} (it may mix "
                        "keys with queries or heads)")
            value = n.input[0]
        elif n.op_type in ("Add", "Where"):
            a, b = (n.input[0], n.input[1]) if n.op_type == "Add" else (n.input[1], n.input[2])
            if not _reaches_qk(g, a) and _reaches_qk(g, b):
                a, b = b, a
            w.masks.append(b if n.op_type == "Add" else n.input[0])
            if n.op_type == "Add":  # scales met so far lie between this Add and the softmax
                w.factors.append(None if w.runtime_scale else w.scale)
            value = a
        elif n.op_type in ("Mul", "Div"):
            a, b = n.input[0], n.input[1]
            if n.op_type == "Mul" and _factor(g, a) is not None:
                a, b = b, a
            c = _factor(g, b)
            if c is None:
                if _reaches_qk(g, b) or not _reaches_qk(g, a):
                    return (f"{n.op_type} {g.name(j)} multiplies two computed tensors, not "
                            "scores by a scale")
                w.runtime_scale = True
            elif np.any(np.asarray(c) == 0):
                return f"scale {n.op_type} by 0 in {g.name(j)}"
            else:
                w.scale = w.scale * (c if n.op_type == "Mul" else 1.0 / c)
            value = a
        else:
            return f"softmax not fed by a MatMul(Q, Kᵀ): its scores come from {n.op_type} " \
                   f"{g.name(j)}"
    return "no MatMul(Q, Kᵀ) within 12 ops before the softmax"


def _epsilon(scale: float | np.ndarray) -> float | tuple[float, ...]:
    """ε = 1/scale; one per head when the scale differs between heads."""
    arr = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    if np.allclose(arr, arr[0], rtol=1e-12, atol=0):
        return 1.0 / float(arr[0])
    return tuple(float(1.0 / x) for x in arr)


def _check(g: GraphIndex, i: int, claimed: set[int],
           trust: bool = False) -> OnnxMatch | NearMiss:
    """Softmax node i as attention, else why not; `trust`: take every Reshape met as keeping
    the key axis (only to tell an attention-shaped softmax, see `unproven_reshape`)."""
    sm = g.nodes[i]
    name, path = g.name(i), g.block_path(i)
    rank = len(g.shape(sm.input[0]) or ()) or None
    axis = g.attr(i, "axis", -1 if g.opsets.get("", 13) >= 13 else 1)
    if axis != -1 and (rank is None or axis != rank - 1):
        where = f"of rank {rank}" if rank else "of unknown rank"
        return NearMiss(NAME, name, path, f"softmax over axis {axis} of a tensor {where}, "
                        "not the key axis (last)")
    fwd = _forward(g, sm.output[0], claimed, trust)
    if isinstance(fwd, str):
        return NearMiss(NAME, name, path, fwd)
    post, pv = fwd
    w = _backward(g, sm.input[0], claimed, trust)
    if isinstance(w, str):
        return NearMiss(NAME, name, path, w)
    qk_node = g.nodes[w.qk]
    if len(qk_node.input) != 2 or any(g.is_constant(x) for x in qk_node.input):
        return NearMiss(NAME, name, path, f"scores are {g.name(w.qk)} = x·W with a constant "
                        "weight (a readout, not Q·Kᵀ)")
    q, kt = qk_node.input
    pre: list[int] = []
    for operand in (q, kt):
        c, nodes = _operand_scale(g, operand, claimed)
        w.scale, pre = w.scale * c, pre + nodes
        if operand == q and not nodes and (s0 := query_prescale(g, q)) is not None:
            w.prescale = s0
            w.scale = w.scale * s0
    if np.any(np.asarray(w.scale) <= 0):
        return NearMiss(NAME, name, path, f"non-positive attention scale {w.scale}")
    group = tuple(sorted({*pre, w.qk, *w.chain, i, *post, pv}))
    return _match(g, i, group, w, q, kt)


def _bias_factor_notes(factors: list[float | np.ndarray | None]) -> list[str]:
    """softmax((s + B)·c): the later scale c multiplies the bias too, so the logits hold c·B
    (paper-notes §4: z = s/ε + b with b = c·B, ε = 1/(c·…)); say so, as the FX rule does."""
    notes = []
    for f in factors:
        if f is None:
            notes.append("bias added before a run-time scaling (enters the logits scaled)")
            continue
        arr = np.atleast_1d(np.asarray(f, dtype=np.float64))
        if np.allclose(arr, 1.0, rtol=1e-12, atol=0):
            continue
        if np.allclose(arr, arr[0], rtol=1e-12, atol=0):
            notes.append(f"bias added before a scaling (enters the logits as {arr[0]:.4g}·b)")
        else:
            per_head = ", ".join(f"{x:.4g}" for x in arr)
            notes.append(f"bias added before a per-head scaling (enters the logits as "
                         f"[{per_head}]·b)")
    return notes


def _match(g: GraphIndex, i: int, group: tuple[int, ...], w: _Walk, q: str,
           kt: str) -> OnnxMatch:
    qs = g.shape(q) or ()
    d_head = qs[-1] if qs and isinstance(qs[-1], int) else None
    heads, heads_why = heads_of(g, w.qk, w.chain)
    notes = [f"{len(w.masks)} mask/bias term(s)"] if w.masks else []
    notes += _bias_factor_notes(w.factors)
    eps: float | tuple[float, ...] | None = _epsilon(w.scale)
    scale = w.scale if isinstance(w.scale, float) else [float(x) for x in w.scale]
    if w.runtime_scale:
        eps = None
        notes.append("scale computed at run time: ε not read from a constant")
    elif w.prescale is not None:
        s0 = w.prescale
        notes.append(f"q pre-scaled by s₀ = {s0:.4g} before attention (q = q_proj(x)·s₀, then "
                     f"scale {w.scale / s0:.4g}): ε = {eps:.4g} = 1/(s₀·scale) in q_proj(x)'s "
                     "units, as the FX pass records it")
    elif isinstance(eps, tuple):
        notes.append(f"per-head scale: ε differs across {len(eps)} heads")
    elif eps == 1.0:
        notes.append("no explicit scale (ε = 1; any 1/√d folded into the weights)")
    elif d_head and eps is not None and math.isclose(eps, math.sqrt(d_head), rel_tol=1e-6):
        notes.append("ε = √d_head (vanilla scaling)")
    kt_op = g.op(kt)
    if g.nodes[w.qk].op_type == "Einsum":
        notes.append(f"Einsum '{g.attr(w.qk, 'equation', b'').decode()}'")
    notes.append("Kᵀ by Transpose" if kt_op == "Transpose" else f"Kᵀ from {kt_op or 'input'}")
    params = {"heads": heads, "d_head": d_head, "scale": scale, "biases": len(w.masks)}
    evidence = (*dict.fromkeys(f"onnx.{g.nodes[k].op_type}" for k in group), heads_why)
    cls = g.module_class(i)
    return OnnxMatch(NAME, spec(g.block_path(i), eps, params,
                                evidence + ((cls,) if cls else ()), notes),
                     i, group, g.source(group))


def unproven_reshape(g: GraphIndex, i: int, claimed: set[int]) -> str | None:
    """Why softmax node i, attention-shaped (Q·Kᵀ → softmax → π·V) but for a Reshape on the way
    that is not proven to keep the key axis, is not read as attention; None otherwise. The `lse`
    rule then leaves it a near-miss instead of calling it an exact readout."""
    found = _check(g, i, claimed)
    if isinstance(found, OnnxMatch) or _UNPROVEN not in found.reason:
        return None
    return found.reason if isinstance(_check(g, i, claimed, trust=True), OnnxMatch) else None


class AttentionChainRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        out: list[OnnxMatch | NearMiss] = []
        for i, n in enumerate(g.nodes):
            if n.op_type == "Softmax" and (n.domain or "") == "" and i not in claimed:
                found = _check(g, i, claimed)
                if isinstance(found, OnnxMatch):
                    claimed.update(found.nodes)
                out.append(found)
        return out


RULE = AttentionChainRule()
