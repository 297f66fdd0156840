"""Rule `ssm`: selective scans (Mamba) and decay recurrences, found by their zero-order hold.

    x' = Ā x + B̄ u,  Ā = exp(Δ A),  A = −exp(A_log) (a learned stable decay)
    ℋ(x, p) = p·(A x + B u), deterministic (ε = 0); time step Δ (Mamba: Δ = softplus(·) = LSE₁)
Structural with an exact zero-order hold (paper-notes §4), as the FX rule `ssm` reads it.

Found by an `Exp` of `Mul(A, Δ)` (the ZOH Ā = exp(ΔA)) where
  * A is a learned decay: `Neg(Exp(parameter))` / `Mul(Exp(parameter), −1)` as traced, or a
    constant with every entry < 0 (the dynamo exporter folds −exp(A_log) into one initializer;
    a single number is not enough to tell a decay from a fixed scale);
  * Δ comes from a `Softplus` (alone, or the exporter's `Where(x > threshold, x, Softplus(x))`),
    through shape ops and per-step selections (Gather / Slice at constant positions). Without
    a softplus, only the traced decay form counts (a linear recurrence with time step 1,
    RWKV-style); an exponent times a computed (non-parameter) factor is not a decay.
One block per module (`pkg.torch.onnx.name_scopes`, i.e. per mixer): the Δ softplus and every node
of that module computed from Δ — the ZOH, B̄u, the scan unrolled per time step (per-step Gathers,
state updates h ← Ā_t h + B̄_t u_t, C readouts), the D skip and the gate — up to the module's own
last node (the output projection, a child module, stays outside). Wrapped as one `HJSSMStep` call
when that set is convex (no path leaves it and re-enters); otherwise reported without wrapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.passes.onnx.wrap import _convex
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "ssm"
FORMULA = "ℋ(x, p) = p·(A x + B u), A = −exp(A_log); Ā = exp(ΔA)"
TIME_STEP = "Δ = softplus(·) per token and channel"  # as the FX rule reports it
_SHAPE = {"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Expand", "Transpose"}
_SCOPES = "pkg.torch.onnx.name_scopes"


@dataclass
class _Decay:
    """A decay operand A: how it was recognised and the nodes that compute it."""

    text: str
    tags: tuple[str, ...]
    nodes: list[int] = field(default_factory=list)
    traced: bool = False  # −exp(parameter) as ops (not a folded constant)


@dataclass
class _Zoh:
    exp: int
    mul: int
    decay: _Decay
    delta: list[int]  # the softplus nodes (Softplus, and Greater / Where of its threshold)


def _back(g: GraphIndex, value: str, nodes: list[int]) -> str:
    """Follow shape / cast producers of `value` back (their indices go into `nodes`)."""
    for _ in range(8):
        j = g.producer_of(value)
        if j is None or g.nodes[j].op_type not in _SHAPE or g.is_constant(value):
            break
        nodes.append(j)
        value = g.nodes[j].input[0]
    return value


def _exp_of_param(g: GraphIndex, value: str, nodes: list[int]) -> str | None:
    """The parameter θ when `value` = exp(θ) (θ an initializer, through casts), else None."""
    j = g.producer_of(value)
    if j is None or g.nodes[j].op_type != "Exp":
        return None
    theta = g.skip_passthrough(g.nodes[j].input[0])
    if not g.is_constant(theta):
        return None
    nodes.append(j)
    return theta


def _decay(g: GraphIndex, value: str) -> _Decay | None:
    """A = −exp(θ) (traced) or a constant with all entries < 0 (folded), else None."""
    nodes: list[int] = []
    v = _back(g, value, nodes)
    if g.is_constant(v):
        c = g.constant(v)
        if (c is None or c.size < 2 or not np.issubdtype(c.dtype, np.floating)
                or not np.all(c < 0)):
            return None
        return _Decay(f"A = constant '{v}' ({c.size} entries, all < 0: −exp(A_log) folded by "
                      "the exporter)", (f"A={v}",), nodes)
    j = g.producer_of(v)
    if j is None:
        return None
    n = g.nodes[j]
    inner = None
    if n.op_type == "Neg":
        inner = n.input[0]
    elif n.op_type == "Mul" and -1.0 in (g.scalar(n.input[0]), g.scalar(n.input[1])):
        inner = n.input[1] if g.scalar(n.input[0]) == -1.0 else n.input[0]
    if inner is None:
        return None
    chain = [*nodes, j]
    theta = _exp_of_param(g, _back(g, inner, chain), chain)
    if theta is None:
        return None
    return _Decay(f"A = −exp({theta}) ({g.name(j)})", ("onnx.Neg" if n.op_type == "Neg"
                                                       else "onnx.Mul(−1)", f"A=−exp({theta})"),
                  chain, traced=True)


def _softplus(g: GraphIndex, value: str) -> list[int]:
    """The softplus nodes Δ = `value` comes from (through shape ops): [Softplus] or the
    exporter's thresholded [Softplus, Greater, Where]; [] when Δ is not a softplus. Δ may be
    taken per step first (`Gather` / `Slice` at constant positions: exp(Δ[:, t] ⊗ A))."""
    v = _back(g, value, [])
    for _ in range(4):
        j = g.producer_of(v)
        if j is None or not _step_select(g, j):
            break
        v = _back(g, g.nodes[j].input[0], [])
    j = g.producer_of(v)
    if j is None:
        return []
    n = g.nodes[j]
    if n.op_type == "Softplus":
        return [j]
    if n.op_type == "Where" and len(n.input) == 3:
        sp = [k for k in (g.producer_of(n.input[1]), g.producer_of(n.input[2]))
              if k is not None and g.nodes[k].op_type == "Softplus"]
        cond = g.producer_of(n.input[0])
        if sp:
            extra = [cond] if cond is not None and g.nodes[cond].op_type in (
                "Greater", "Less", "GreaterOrEqual", "LessOrEqual") else []
            return sorted({sp[0], *extra, j})
    return []


def _step_select(g: GraphIndex, j: int) -> bool:
    """Node j selects a fixed part of its first input (a time step): Gather at constant
    indices, or Slice with constant starts / ends / axes / steps."""
    n = g.nodes[j]
    if n.op_type == "Gather":
        return len(n.input) == 2 and g.is_constant(n.input[1])
    if n.op_type == "Slice":
        return all(g.is_constant(x) for x in n.input[1:] if x)
    return False


def _zoh(g: GraphIndex, i: int) -> _Zoh | NearMiss | None:
    """Exp node i as a ZOH exp(Δ·A) or exp(A·t) (None: not a candidate)."""
    name, path = g.name(i), g.block_path(i)
    x = g.nodes[i].input[0]
    m = g.producer_of(_back(g, x, []))
    if m is None or g.nodes[m].op_type != "Mul" or len(g.nodes[m].input) != 2:
        return None
    a, b = g.nodes[m].input
    for decay_side, other in ((a, b), (b, a)):
        d = _decay(g, decay_side)
        if d is None:
            continue
        delta = _softplus(g, other)
        if delta or d.traced:
            return _Zoh(i, m, d, delta)
        return NearMiss(NAME, name, path, "exp of a negative constant times a value that is "
                        "not a softplus time step Δ: not read as a zero-order hold")
    if _softplus(g, a) or _softplus(g, b):
        return NearMiss(NAME, name, path, "exp(Δ·a) with Δ = softplus but a not a learned decay "
                        "(neither −exp(parameter) nor a constant < 0): not an SSM")
    return None


def _module(g: GraphIndex, i: int) -> str | None:
    """The module path that groups node i's block: its name scope (None without one)."""
    return g.module_path(i) if _SCOPES in g.meta(i) or g.module_path(i) else None


def _block(g: GraphIndex, path: str, zohs: list[_Zoh], claimed: set[int],
           mods: list[str | None]) -> OnnxMatch:
    """`mods[j]`: node j's module path, '' when it has none, None for a scope-less helper node
    (no name scope at all, e.g. the exporter's Split), which joins whichever module it is in."""
    own = [j for j, p in enumerate(mods) if p == path]
    stop = max(own) if own else max(z.exp for z in zohs)
    delta = sorted({k for z in zohs for k in z.delta})
    seeds = [g.nodes[k].output[0] for k in delta if g.nodes[k].op_type == "Softplus"] \
        or [g.nodes[z.exp].output[0] for z in zohs]
    reach: set[int] = set()
    for s in seeds:
        reach |= g.downstream(s, stop)
    # the module's own nodes (and scope-less helper nodes such as Split) computed from Δ
    scan = {j for j in reach if mods[j] in (path, None)}
    decay = {k for z in zohs for k in z.decay.nodes if mods[k] == path}
    group = tuple(sorted(({*delta, *scan, *decay, *(z.exp for z in zohs), *(z.mul for z in zohs)})
                         - claimed))
    anchor = zohs[0].exp
    selective = bool(delta)
    steps = {u for z in zohs for u in g.users(g.nodes[z.exp].output[0])
             if g.nodes[u].op_type in ("Gather", "Slice")}
    notes = ["zero-order hold Ā = exp(ΔA) exact" if selective else
             "linear recurrence with decay w = −exp(θ) (time step 1 per token)"]
    notes += [z.decay.text for z in zohs[:1]]
    if len(steps) > 1:
        notes.append(f"scan unrolled over {len(steps)} steps ({len(group)} nodes, one block)")
    wrap = _convex(g, set(group))
    if not wrap:
        notes.append("not wrapped: a path leaves the scan's nodes and re-enters them (recorded "
                     "in the report only; the graph is left as it is)")
    cls = g.module_class(anchor)
    evidence = ("onnx.Exp", "onnx.Mul", *(("onnx.Softplus",) if selective else ()),
                *zohs[0].decay.tags,
                *(f"Δ={g.name(k)}" for k in delta if g.nodes[k].op_type == "Softplus"),
                *(f"Ā=exp(ΔA)={g.name(z.exp)}" for z in zohs), *((cls,) if cls else ()))
    spec = HJSpec(
        path=g.block_path(anchor), kind=BlockKind.SSM,
        hamiltonian=Hamiltonian(FORMULA, {"selective": selective, "scan_steps": len(zohs),
                                          "unrolled_steps": len(steps) or None}),
        epsilon=0.0, time_step=TIME_STEP if selective else 1.0,
        exactness=Exactness.STRUCTURAL, evidence=tuple(dict.fromkeys(evidence)),
        notes="; ".join(notes),
    )
    return OnnxMatch(NAME, spec, anchor, group, g.source(group), wrap=wrap)


def _bare_exp_of_param(g: GraphIndex, i: int) -> bool:
    """exp(parameter) whose result is not negated (FX's near-miss: not a stable decay)."""
    theta = g.skip_passthrough(g.nodes[i].input[0])
    if not g.is_constant(theta):
        return False
    c = g.constant(theta)
    if c is None or c.size < 2:
        return False
    users = g.users(g.nodes[i].output[0])
    return not any(g.nodes[u].op_type == "Neg" or (g.nodes[u].op_type == "Mul" and -1.0 in (
        g.scalar(g.nodes[u].input[0]), g.scalar(g.nodes[u].input[1]))) for u in users)


class SSMRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        out: list[OnnxMatch | NearMiss] = []
        by_path: dict[str, list[_Zoh]] = {}
        for i, n in enumerate(g.nodes):
            if n.op_type != "Exp" or (n.domain or "") != "" or i in claimed:
                continue
            found = _zoh(g, i)
            if isinstance(found, _Zoh):
                path = _module(g, i)
                by_path.setdefault(path if path is not None else g.name(i), []).append(found)
            elif found is not None:
                out.append(found)
            elif _bare_exp_of_param(g, i):
                out.append(NearMiss(NAME, g.name(i), g.block_path(i),
                                    "exp(parameter) not negated: not a stable decay A = −exp(·)"))
        mods: list[str | None] = []
        if by_path:
            mods = [g.module_path(j) for j in range(len(g.nodes))]
            mods = [None if not p and _SCOPES not in g.meta(j) else p
                    for j, p in enumerate(mods)]
        for path, zohs in by_path.items():
            m = _block(g, path, zohs, claimed, mods)
            claimed.update(m.nodes)
            out.insert(0, m)
        return out


RULE = SSMRule()
