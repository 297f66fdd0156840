"""Rule `attention`: SDPA nodes and eager matmul → scale → (+bias) → softmax → matmul chains.

    π = softmax(s·q kᵀ + B),  out = π v,   ε = 1/s  (√d_head when s is SDPA's default)

A query pre-scaled by the model (q = q_proj(x)·s₀, OPT / Whisper) is read in q_proj(x)'s units,
as the Hugging Face path does: ε = 1/(s₀·s), and the step carries s₀.

Exact (paper-notes §4): LSE in the query with atoms W_j = M x_j, M = W_Q W_Kᵀ, biases b_j (masked
key = atom removed). Grouped-query, causal / padding / sliding-window masks, relative or ALiBi
biases and RoPE are noted in the record.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.extract import external_inputs, extract_subgraph, schema_args
from hjplug.passes.fx.graph import is_param, module_class, module_path, op_name, shape
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.passes.fx.rules._opaque import opaque_leaf
from hjplug.passes.fx.sizes import divides, same_size, sym_shape
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "attention"
FORMULA = "H(p) = pᵀΣp per head; atoms M·x_j, M = W_Q W_Kᵀ"
_CAST = {"to", "_to_copy", "contiguous", "clone", "type_as", "detach", "alias"}
_DROPOUT = {"dropout", "native_dropout", "feature_dropout"}
_MATMUL = {"matmul", "bmm"}
_SOFTMAX = {"softmax", "_softmax", "_safe_softmax"}
_INDEX_CMP = {"le", "lt", "ge", "gt"}


def _ancestor_ops(node: Any, limit: int = 400) -> tuple[set[str], set[str], set[fx.Node]]:
    """(op names, placeholder names, nodes) in the ancestry of `node` (bounded walk)."""
    ops: set[str] = set()
    names: set[str] = set()
    seen: set[fx.Node] = set()
    todo = [node] if isinstance(node, fx.Node) else []
    while todo and len(seen) < limit:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "placeholder":
            names.add(n.name)
        ops.add(op_name(n))
        todo.extend(n.all_input_nodes)
    return ops, names, seen


def _describe_mask(mask: Any, ctx: RuleContext, path: str) -> list[str]:
    """What a mask / bias does, read from how it was built: padding (from the attention_mask
    input), causal (an index ≤ index comparison), sliding window (… with an offset), positions."""
    if not isinstance(mask, fx.Node):
        return []
    ops, names, seen = _ancestor_ops(mask)
    kinds = []
    if any("attention_mask" in n for n in names):
        kinds.append("padding")
    for n in seen:
        if op_name(n) in _INDEX_CMP and all(isinstance(a, fx.Node) for a in n.args[:2]):
            if "causal" not in kinds:
                kinds.append("causal")
            for a in n.args[:2]:
                if op_name(a) in ("sub", "add") and _scalar(a.args[1]) is not None:
                    kinds.append(f"sliding-window({abs(int(_scalar(a.args[1]) or 0))})")
    if "embedding" in ops:
        kinds.append("relative position bias")
    dtype = str(getattr(mask.meta.get("val"), "dtype", ""))
    return kinds or ["boolean mask" if dtype == "torch.bool" else "additive bias"]


def _region_notes(ctx: RuleContext, path: str, k: Any) -> list[str]:
    ops = {op_name(n) for n in ctx.index.regions.get(path, ())}
    notes = []
    if {"neg", "cat"} <= ops:
        notes.append("RoPE on q, k")
    k_ops, _, k_nodes = _ancestor_ops(k, limit=12)
    if "expand" in k_ops and ({"reshape", "view", "_unsafe_view"} & k_ops):
        notes.append("grouped-query (repeat_kv)")
    elif "expand" in k_ops:  # one kv head broadcast over the query heads (multi-query)
        for n in k_nodes:
            src, out = (shape(n.args[0]), shape(n)) if op_name(n) == "expand" else (None, None)
            if src and out and len(src) == len(out) >= 3 and src[-3] == 1 != out[-3]:
                notes.append(f"multi-query (1 kv head broadcast over {out[-3]} heads by expand)")
                break
    return notes


def _spec(path: str, eps: float, params: dict[str, Any], evidence: tuple[str, ...],
          notes: list[str]) -> HJSpec:
    return HJSpec(path=path, kind=BlockKind.ATTENTION, hamiltonian=Hamiltonian(FORMULA, params),
                  epsilon=eps, time_step=None, exactness=Exactness.EXACT, evidence=evidence,
                  notes="; ".join(notes))


def _constant_mask_kind(ctx: RuleContext, mask: fx.Node) -> str | None:
    """'causal' / 'none' when the mask depends on no model input and evaluates to exactly the
    top-left causal pattern / to no masking at all; None otherwise (kept as an explicit mask)."""
    if mask in ctx.memo:
        return ctx.memo[mask]
    kind = None
    _, _, seen = _ancestor_ops(mask, limit=2000)
    if len(seen) < 2000 and all(n.op in ("call_function", "get_attr") for n in seen):
        ordered = sorted(seen, key=ctx.index.order.__getitem__)
        try:
            value = extract_subgraph(ordered, [], mask, root=ctx.graph_module)()
        except Exception:
            value = None
        if isinstance(value, torch.Tensor) and value.dim() >= 2:
            allowed = value if value.dtype == torch.bool else value > torch.finfo(
                value.dtype).min / 2 if value.is_floating_point() else None
            if allowed is not None and (value.dtype == torch.bool or bool(
                    (value[allowed] == 0).all())):
                tq, tk = allowed.shape[-2:]
                tril = torch.ones(tq, tk, dtype=torch.bool, device=allowed.device).tril()
                if bool(allowed.all()):
                    kind = "none"
                elif tq == tk and torch.equal(allowed, tril.expand_as(allowed)):
                    kind = "causal"
    ctx.memo[mask] = kind
    return kind


def _sdpa(ctx: RuleContext, node: fx.Node) -> Match | NoMatch:
    from hjplug.modules.attention import HJAttentionStep

    a = schema_args(node)
    q, k, v, mask = a["query"], a["key"], a["value"], a.get("attn_mask")
    path = module_path(node)
    qs, ks = shape(q), shape(k)
    if qs is None or ks is None or len(qs) < 3 or not isinstance(qs[-1], int):
        return NoMatch(NAME, node.name, path, "SDPA with query/key of unknown rank or head size")
    scale = a.get("scale")
    eps = 1.0 / float(scale) if scale else math.sqrt(qs[-1])
    heads, kv_heads = qs[-3], ks[-3]
    notes = _region_notes(ctx, path, k)
    if kv_heads != heads:
        notes.append(f"grouped-query ({heads} query / {kv_heads} kv heads)")
    if a.get("is_causal"):
        notes.append("causal")
    notes += _describe_mask(mask, ctx, path)
    params = {"heads": heads, "kv_heads": kv_heads, "d_head": qs[-1],
              "scale": "1/√d_head" if not scale else float(scale)}
    s0 = _query_prescale(q)
    if s0 is not None:
        notes.append(_prescale_note(s0, 1.0 / eps))
        params["q_prescale"] = s0
        eps /= s0
    elif scale == 1.0:
        notes.append("SDPA at scale 1 (ε = 1; any 1/√d folded into the weights)")
    flags = {"dropout_p": 0.0, "is_causal": bool(a.get("is_causal", False)),
             "scale": scale, "enable_gqa": bool(a.get("enable_gqa", False))}
    folded = _constant_mask_kind(ctx, mask) if isinstance(mask, fx.Node) else None
    if folded is not None:  # a constant mask: use SDPA's own causal path (as eager HF does)
        flags["is_causal"] = flags["is_causal"] or folded == "causal"
        notes.append(f"constant {folded} mask folded into is_causal" if folded == "causal"
                     else "constant all-pass mask dropped")
        mask = None
    args = (q, k, v, mask) if isinstance(mask, fx.Node) else (q, k, v)
    spec = _spec(path, eps, params,
                 ("aten.scaled_dot_product_attention", module_class(node)),
                 list(dict.fromkeys(notes)))
    return Match(NAME, spec, node, frozenset({node}), (Rewrite(node, args),),
                 lambda s: HJAttentionStep(s, mode="sdpa", sdpa_kwargs=flags,
                                           q_prescale=s0 or 1.0))


def _scalar(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


_SHAPE = {"view", "reshape", "_unsafe_view", "flatten", "unflatten"}
_QK = _MATMUL | {"baddbmm"}


def _leads_to_matmul(x: Any, depth: int = 8) -> bool:
    while isinstance(x, fx.Node) and depth > 0:
        name = op_name(x)
        if name in _QK:
            return True
        if name not in _CAST | _SHAPE | {"mul", "mul_", "div", "div_", "add", "add_",
                                         "masked_fill"}:
            return False
        x, depth = x.args[0], depth - 1
    return False


_Scores = tuple[list[fx.Node], list[tuple[fx.Node, float]], float, Any, list[float]]


def _walk_scores(sm: fx.Node) -> _Scores | str:
    """softmax input back to the q·kᵀ op: (chain, biases, scale, qk node, fills) or a reason.

    Each bias comes with its own factor: the product of the scalar mul / div between its add
    and the softmax (times add's alpha / baddbmm's beta), i.e. the softmax input is
    scale·(q kᵀ) + Σ factor·bias. A bias added before a later scaling has factor ≠ 1.
    `fills`: the constant values masked_fill writes, as they reach the softmax (× factor)."""
    chain: list[fx.Node] = []
    biases: list[tuple[fx.Node, float]] = []
    fills: list[float] = []
    scale = 1.0
    cur: Any = sm.args[0]
    while True:
        if not isinstance(cur, fx.Node):
            return "softmax of a constant"
        name = op_name(cur)
        if name in _MATMUL:
            return chain, biases, scale, cur, fills
        if name == "baddbmm":  # β·bias + α·q kᵀ (ALiBi in Bloom)
            a = schema_args(cur)
            if isinstance(a.get("self"), fx.Node):
                beta = _scalar(a.get("beta", 1.0))
                biases.append((a["self"], scale * (1.0 if beta is None else beta)))  # type: ignore[arg-type]
            scale *= float(a.get("alpha", 1.0))  # type: ignore[arg-type]
            return chain, biases, scale, cur, fills
        if name in _CAST | _SHAPE:
            chain.append(cur)
            cur = cur.args[0]
        elif name in ("add", "add_"):
            x, y = cur.args[0], cur.args[1]
            if not _leads_to_matmul(x) and _leads_to_matmul(y):
                x, y = y, x
            if isinstance(y, fx.Node):
                alpha = _scalar(cur.kwargs.get("alpha", 1.0))
                if alpha is None:
                    return "aten.add with a non-scalar alpha"
                biases.append((y, scale * alpha))
            chain.append(cur)
            cur = x
        elif name in ("mul", "mul_", "div", "div_") and _scalar(cur.args[1]) is not None:
            c = _scalar(cur.args[1])
            scale *= c if name.startswith("mul") else 1.0 / c  # type: ignore[operator]
            chain.append(cur)
            cur = cur.args[0]
        elif name == "masked_fill":
            value = _scalar(cur.args[2]) if len(cur.args) > 2 else None
            if value is not None:
                fills.append(value * scale)
            chain.append(cur)
            cur = cur.args[0]
        elif name in ("mul", "mul_", "div", "div_") and isinstance(cur.args[1], fx.Node):
            t = cur.args[1]
            what = "a parameter or buffer; " if is_param(t) else ""
            return (f"aten.{name} by the tensor {t.name} ({what}a runtime or learnable "
                    "temperature, not a constant ε)")
        else:
            return f"aten.{name}" if name else cur.op


def _operand_scale(x: Any, user: fx.Node) -> tuple[fx.Node, float] | None:
    """(y, c) when the q·kᵀ operand `x` is y·c or y/c for a Python scalar c, used only by
    `user` (a pre-scaled query, e.g. timm or nn.MultiheadAttention with need_weights)."""
    if not isinstance(x, fx.Node) or op_name(x) not in ("mul", "div") or len(x.args) < 2:
        return None
    c = _scalar(x.args[1])
    users = [u for u in x.users if op_name(u) != "_assert_tensor_metadata"]
    if c is None or c == 0 or users != [user] or not isinstance(x.args[0], fx.Node):
        return None
    return x.args[0], (c if op_name(x) == "mul" else 1.0 / c)


_CONTRACT = _MATMUL | {"einsum", "baddbmm"}


def _query_prescale(q: Any, depth: int = 8) -> float | None:
    """s₀ when the query reaches attention as q_proj(x)·s₀ (or /c) through reshapes / transposes
    (OPT, BART, Whisper, Marian: q pre-scaled, then SDPA / q·kᵀ at scale 1); None otherwise
    (also for c = 1, and c < 0: that q is read as it is). The recorded ε is then
    1/(s₀·scale), in q_proj(x)'s units (what the Hugging Face path records)."""
    x = q
    while isinstance(x, fx.Node) and depth > 0:
        name = op_name(x)
        if name in ("mul", "div") and len(x.args) > 1:
            c = _scalar(x.args[1])
            if not c or c <= 0 or c == 1.0 or not math.isfinite(c):  # c < 0: q is −|c|·q_proj
                return None
            return c if name == "mul" else 1.0 / c
        if name not in _CAST | _SHAPE | _VIEWS:
            return None
        x, depth = x.args[0], depth - 1
    return None


def _heads_per_batch(q: Any, depth: int = 10) -> int | None:
    """H when a 3-D [B·H, S, d] query is reshaped from [B, H, S, d] or from merged heads
    [..., H·d] (nn.MultiheadAttention: [S, B, E] viewed as [S, B·H, d]), walking back through
    casts / views to that reshape; None when the split cannot be read. Sizes are compared as
    expressions, so a dynamic capture (B a SymInt: B·H = 2·s0) reads H as a static one does."""
    qs = sym_shape(q)
    if qs is None or len(qs) != 3 or not isinstance(qs[-1], int):
        return None
    bh, d = qs[0], qs[-1]
    x = q
    while isinstance(x, fx.Node) and depth > 0:
        name = op_name(x)
        if name in _SHAPE and isinstance(x.args[0], fx.Node):  # the reshape that made B·H
            si = sym_shape(x.args[0])
            if not si:
                return None
            if len(si) == 4 and isinstance(si[1], int) and si[-1] == d and \
                    same_size(si[0] * si[1], bh):
                return si[1]  # [B, H, S, d]
            last = si[-1]
            if isinstance(last, int) and last != d and last % d == 0 and divides(last // d, bh):
                return last // d  # [..., H·d]
        elif name not in _CAST | _VIEWS:
            return None
        x, depth = x.args[0], depth - 1
    return None


def _heads_on_logits(z: Any, qk: fx.Node, heads: Any, per_batch: int | None) -> bool:
    """The softmax input `z` of a replayed chain holds q·kᵀ's [..., Sq, Sk] regrouped only in
    its leading dims, with the heads on dim −3: [B, H, Sq, Sk] (H = `per_batch`, or `heads` of a
    4-D query), or [B·H, Sq, Sk] with H read (`per_batch`). Then one ε per head scales z by
    ε₀/ε_h on dim −3 (tiled over the batch)."""
    zs, ss = sym_shape(z), sym_shape(qk)
    if not zs or not ss or len(zs) < 3 or len(ss) < 3:
        return False
    if not (same_size(zs[-1], ss[-1]) and same_size(zs[-2], ss[-2])
            and same_size(math.prod(zs[:-2]), math.prod(ss[:-2]))):
        return False
    h = per_batch if len(ss) == 3 else heads
    if not isinstance(h, int) or isinstance(h, bool) or h <= 0:
        return False
    return zs[-3] == h or (per_batch is not None and len(zs) == 3)


def _merged_heads_note(bh: int | str, per_batch: int | None) -> str:
    """The record's note on a 3-D [B·H, S, d] layout: what 'heads' counts, and H or why not."""
    dyn = "" if isinstance(bh, int) else f" ({bh}: the batch size is dynamic)"
    if per_batch:
        return (f"3-D [batch·heads, S, d] layout: 'heads' counts batch × heads{dyn}; statistics "
                f"recorded as [B, H, Sq] with H = {per_batch} (read from the reshape that merged "
                "batch and heads; one ε per head, tiled over the batch)")
    return (f"3-D [batch·heads, S, d] layout: 'heads' counts batch × heads{dyn}; H not readable "
            "(no reshape from [B, H, S, d] or [..., H·d] found on the query): statistics "
            "recorded as [1, batch·heads, Sq], no per-head ε (heads=…)")


def _prescale_note(s0: float, scale: float) -> str:
    return (f"q pre-scaled by s₀ = {s0:.4g} before attention (q = q_proj(x)·s₀, then scale "
            f"{scale:.4g}): ε = {1.0 / (s0 * scale):.4g} = 1/(s₀·scale) in q_proj(x)'s units, as "
            f"the Hugging Face path records (logits q_proj(x)·k/ε; the step applies s₀)")




def _weights_contraction(sm: fx.Node, depth: int = 8) -> str | None:
    """Name of the op that contracts the softmax weights (through casts / dropout / reshapes):
    'matmul', 'einsum', …; None when they are not contracted (a readout)."""
    todo, seen = [sm], set()
    while todo:
        n = todo.pop()
        if n in seen or len(seen) > depth * 4:
            continue
        seen.add(n)
        for u in n.users:
            name = op_name(u)
            if name in _CONTRACT:
                return name
            if name in _CAST | _DROPOUT | _SHAPE | {"transpose", "permute", "getitem"}:
                todo.append(u)
    return None


def _walk_values(sm: fx.Node) -> tuple[list[fx.Node], fx.Node] | None:
    """softmax forward through casts / dropout / reshapes to the matmul with v."""
    chain: list[fx.Node] = []
    out = sm
    while True:
        users = [u for u in out.users if op_name(u) != "_assert_tensor_metadata"]
        pv = next((u for u in users if op_name(u) in _MATMUL and u.args[0] is out), None)
        if pv is not None:
            return chain, pv
        step = next((u for u in users if op_name(u) in _CAST | _DROPOUT | _SHAPE), None)
        if step is None:
            return None
        chain.append(step)
        out = step


def _is_float(node: fx.Node) -> bool:
    val = node.meta.get("val")
    return isinstance(val, torch.Tensor) and val.is_floating_point()


def _prescaled_biases(ctx: RuleContext, biases: list[tuple[fx.Node, float]], pv: fx.Node
                      ) -> dict[int, fx.Node]:
    """{index in `biases`: node} for the biases with factor ≠ 1: scale_bias(b, factor) nodes
    inserted just before `pv` (where the step call goes), removed atoms (−∞ / finfo.min) kept
    as they are. The step then adds factor·b, which is what the model's softmax input holds."""
    from hjplug.modules.attention_bias import scale_bias

    out: dict[int, fx.Node] = {}
    for i, (b, f) in enumerate(biases):
        if f == 1.0:
            continue
        with ctx.graph.inserting_before(pv):
            node = ctx.graph.call_function(scale_bias, (b, f))
        node.meta = {k: b.meta[k] for k in ("val", "tensor_meta") if k in b.meta}
        if "nn_module_stack" in pv.meta:
            node.meta["nn_module_stack"] = pv.meta["nn_module_stack"]
        ctx.index.order[node] = ctx.index.order[pv]  # only used by the step call, before pv
        out[i] = node
    return out


def _eager(ctx: RuleContext, sm: fx.Node) -> Match | NoMatch:
    from hjplug.modules.attention import HJAttentionStep
    from hjplug.modules.attention_bias import REMOVED_BELOW

    path = module_path(sm)
    dim = sm.args[1] if len(sm.args) > 1 else sm.kwargs.get("dim", -1)
    rank = len(shape(sm) or ())
    contracted = _weights_contraction(sm)
    if dim not in (-1, rank - 1):
        reason = f"softmax over dim {dim}, not the key axis (-1)"
        if contracted:  # e.g. normalised over the queries
            reason += (f", then contracted by aten.{contracted}: not the q·kᵀ → softmax(-1) → "
                       "·v form (weights normalised over another axis); not read as attention")
        return NoMatch(NAME, sm.name, path, reason, sticky=contracted is not None)
    back = _walk_scores(sm)
    fwd = _walk_values(sm)
    if isinstance(back, str):
        how = back
        reason = (f"attention-like (softmax weights · v by aten.{contracted}) but the scores "
                  f"pass through {how}, which the attention rule does not read"
                  if contracted else
                  f"softmax not fed by a q·kᵀ matmul (its input comes from {how})")
        return NoMatch(NAME, sm.name, path, reason, sticky=contracted is not None)
    if fwd is None:
        reason = ("softmax weights are not contracted with values by a matmul"
                  if not contracted else
                  f"softmax weights are contracted with values by aten.{contracted}, which the "
                  "attention rule does not read" if contracted not in _MATMUL else
                  f"softmax weights reach aten.{contracted} only after a transpose / permute or "
                  "as its second operand (normalised over the other axis, e.g. the queries); "
                  "not read as attention")
        return NoMatch(NAME, sm.name, path, reason, sticky=contracted is not None)
    pre, biases, scale, qk, fills = back
    post, pv = fwd
    qi = 1 if op_name(qk) == "baddbmm" else 0
    q, kt = qk.args[qi], qk.args[qi + 1]
    prescaled: list[fx.Node] = []  # q·c / kᵀ·c feeding q·kᵀ: c is part of the scale
    for operand in (q, kt):
        found = _operand_scale(operand, qk)
        if found is not None:
            prescaled.append(operand)  # type: ignore[arg-type]
            scale *= found[1]
    if prescaled:
        q = _operand_scale(q, qk)[0] if q in prescaled else q  # type: ignore[index]
        kt = _operand_scale(kt, qk)[0] if kt in prescaled else kt  # type: ignore[index]
    if scale <= 0:
        return NoMatch(NAME, sm.name, path,
                       f"attention-like, but the scores enter the softmax with a factor "
                       f"{scale:.4g} on q·kᵀ (negative or zero): softmax(−c·q·kᵀ) favours "
                       "dissimilar keys, no temperature ε = 1/scale > 0; not read as attention",
                       sticky=True)
    chain = [*prescaled, qk, *pre, sm, *post, pv]
    v = pv.args[1]
    qs = shape(q)
    if qs is None or not all(isinstance(t, fx.Node) for t in (q, kt, v)):
        return NoMatch(NAME, sm.name, path, "q·kᵀ operands without shapes")
    if scale == 1.0 and not isinstance(qs[-1], int):
        return NoMatch(NAME, sm.name, path, "q·kᵀ with a dynamic head size")
    ordered = sorted(chain, key=ctx.index.order.__getitem__)
    side = [x for x in external_inputs(ordered) if x not in (q, kt, v)]
    simple = op_name(qk) in _MATMUL and not any(op_name(n) in _SHAPE for n in chain) and \
        not any(op_name(n) == "masked_fill" for n in chain)
    # the step adds its bias slots to the logits unscaled (z = s/ε + (ε₀/ε)·b): a bias that a
    # later mul / div also scales enters as factor·b, pre-scaled in the graph (below); one that
    # cannot be (not a float tensor, factor ≤ 0, not a side input) makes the chain replayed
    if simple and not all(b in side and (f == 1.0 or (f > 0 and _is_float(b)))
                          for b, f in biases):
        simple = False
    scaled = _prescaled_biases(ctx, biases, pv) if simple else {}
    inputs = [q, kt, v, *side, *scaled.values()]  # the core ignores the pre-scaled copies
    core = extract_subgraph(ordered, inputs, pv)
    # off the identified ε: the same chain with the softmax input z₀ scaled by ε₀/ε (ε > 0, the
    # bias included: a temperature); it also returns z for the "scores" / "stats" points
    deform = None if simple else extract_subgraph(ordered, inputs, (pv, sm.args[0]),
                                                  scale_logits=sm.args[0])
    eps = 1.0 / scale
    notes = _region_notes(ctx, path, kt)
    notes += [d for b, _ in biases for d in _describe_mask(b, ctx, path)]
    if op_name(qk) == "baddbmm":
        notes.append("ALiBi / additive bias fused in baddbmm")
    s0 = _query_prescale(q)
    if s0 is not None:
        notes.append(_prescale_note(s0, scale))
        eps /= s0
    elif scale == 1.0:
        notes.append("no explicit scale (ε = 1; any 1/√d folded into the weights)")
    if prescaled:
        notes.append("scale applied to q / kᵀ before q·kᵀ (folded into ε)")
    per_batch = _heads_per_batch(q) if len(qs) == 3 else None
    if len(qs) == 3:
        notes.append(_merged_heads_note(qs[0], per_batch))
    notes += [f"masked_fill with {f:g} (finite, above the −1e30 removed-atom rule): those keys "
              "stay atoms — counted in k_i, weight 0 only by underflow, scaled with the logits "
              "under deformation" for f in fills if f > REMOVED_BELOW and math.isfinite(f)]
    outside = [u for n in (sm, *post) for u in n.users
               if u not in chain and op_name(u) != "_assert_tensor_metadata"]
    if outside:
        notes.append("the softmax weights are also used outside the block (e.g. returned "
                     "attention weights): those stay the model's at any deformed ε")
    notes += [f"bias added before a scaling (enters the logits as {f:.4g}·b)"
              for _, f in biases if f != 1.0]
    heads = qs[-3] if len(qs) >= 3 else 1
    params = {"heads": heads, "d_head": qs[-1], "scale": scale, "biases": len(biases)}
    if s0 is not None:
        params["q_prescale"] = s0
    if per_batch:
        params["heads_per_batch"] = per_batch
    replay_heads = deform is not None and _heads_on_logits(sm.args[0], qk, heads, per_batch)
    if deform is not None and not replay_heads:
        notes.append("replayed chain whose softmax input does not carry the heads on dim −3 "
                     "(or H not readable): one ε per block only")
    evidence = tuple(dict.fromkeys(f"aten.{op_name(n)}" for n in ordered))
    spec = _spec(path, eps, params, (*evidence, module_class(sm)), list(dict.fromkeys(notes)))
    # slots into the step's side inputs: the pre-scaled copy where there is one
    bias_slots = tuple(inputs.index(scaled.get(i, b)) - 3 for i, (b, _) in enumerate(biases)
                       ) if simple else ()
    return Match(NAME, spec, sm, frozenset((*chain, *scaled.values())),
                 (Rewrite(pv, tuple(inputs)),),
                 lambda s: HJAttentionStep(s, mode="eager", core=core, bias_slots=bias_slots,
                                           deform_core=deform, q_prescale=s0 or 1.0,
                                           replay_heads=replay_heads))


_GATE_OPS = {"sigmoid", "div", "div_", "mul", "mul_", "add", "add_", "sub", "rsub", "relu",
             "elu", "exp", "neg", "tanh", "gelu", "silu", "softplus", "masked_fill", "where",
             "pow", "square", "abs"}


_VIEWS = {"t", "numpy_T", "mT", "adjoint", "transpose", "permute", "expand", "unsqueeze",
          "squeeze", "select", "slice"}


def _activation_like(x: Any, depth: int = 4) -> bool:
    """Not a parameter (through casts / views): q, k, v computed from the input."""
    while isinstance(x, fx.Node) and depth >= 0:
        if is_param(x) or x.op == "get_attr":
            return False
        if op_name(x) not in _CAST | _SHAPE | _VIEWS:
            return x.op != "placeholder" or not x.name.startswith(("p_", "b_", "c_"))
        x, depth = x.args[0], depth - 1
    return isinstance(x, fx.Node)


def _unnormalised(pv: fx.Node) -> NoMatch | None:
    """A near-miss for weights · v whose weights come from q·kᵀ through elementwise ops and no
    softmax (sigmoid attention, linear attention φ(q)φ(k)ᵀ / row sum): not a Gibbs average."""
    if len(pv.args) < 2 or not _activation_like(pv.args[1]):
        return None
    ops: list[str] = []
    cur: Any = pv.args[0]
    for _ in range(8):
        if not isinstance(cur, fx.Node):
            return None
        name = op_name(cur)
        if name in _CONTRACT and ops and all(_activation_like(a) for a in cur.args[:2]):
            if not set(ops) - _CAST - _SHAPE:
                return None
            via = ", ".join(dict.fromkeys(f"aten.{o}" for o in reversed(ops)
                                          if o not in _CAST | _SHAPE))
            return NoMatch(NAME, pv.name, module_path(pv),
                           f"attention-like (weights · v, weights from q·kᵀ through {via}) but "
                           "no softmax over the keys: not an LSE / Gibbs average; not read as "
                           "attention")
        if name not in _GATE_OPS | _CAST | _SHAPE or not cur.args:
            return None
        ops.append(name)
        cur = cur.args[0]
    return None


class AttentionRule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        out: list[Match | NoMatch] = []
        for node in ctx.graph.nodes:
            name = op_name(node)
            if node in ctx.claimed:
                continue
            if node.op == "call_module":
                miss = opaque_leaf(ctx, node, NAME)
                if miss is not None:
                    out.append(miss)
            elif name == "scaled_dot_product_attention":
                out.append(_sdpa(ctx, node))
            elif name in _SOFTMAX:
                out.append(_eager(ctx, node))
        taken = {n for m in out if isinstance(m, Match) for n in m.claims}
        for node in ctx.graph.nodes:
            if op_name(node) in _CONTRACT and node not in ctx.claimed and node not in taken:
                miss = _unnormalised(node)
                if miss is not None:
                    out.append(miss)
        return out


RULE = AttentionRule()
