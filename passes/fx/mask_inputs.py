"""Which example inputs a captured graph uses as attention masks (−inf there = removed keys).

An input is a mask when, through mask-shaping ops (views, casts, adds of other masks, where),
it reaches
  - the attn_mask of scaled_dot_product_attention,
  - an add onto attention scores (a tensor from a q·kᵀ contraction) whose sum feeds a softmax:
    softmax(s·q kᵀ + m), also via a bias first (T5: position_bias = embedding + m), or the
    condition of a masked_fill / where on the scores (scores.masked_fill(m.isneginf(), −inf)),
  - the `self` (bias) of baddbmm(m, q, kᵀ) feeding a softmax (nn.MultiheadAttention's weights),
  - a *mask* argument of a module call symbolic_trace kept whole (nn.MultiheadAttention).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx
from torch.utils import _pytree as pytree

from hjplug.passes.fx.extract import schema_args
from hjplug.passes.fx.graph import op_name

__all__ = ["input_nodes", "used_as_attention_mask"]

_FLOW = {
    "to", "_to_copy", "contiguous", "clone", "type_as", "detach", "alias", "view", "reshape",
    "_unsafe_view", "flatten", "unflatten", "t", "transpose", "permute", "expand", "expand_as",
    "unsqueeze", "squeeze", "select", "slice", "repeat", "repeat_interleave", "cat", "stack",
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "masked_fill", "masked_fill_",
    "where", "minimum", "maximum", "getitem", "index", "neg", "copy_", "fill_",
    "eq", "ne", "lt", "le", "gt", "ge", "isinf", "isneginf", "logical_not", "bitwise_not",
}
_ONTO = {"add", "add_", "masked_fill", "masked_fill_", "where"}  # combine a mask with scores
_SOFTMAX = {"softmax", "_softmax", "_safe_softmax", "log_softmax", "_log_softmax"}
_CONTRACT = {"matmul", "bmm", "mm", "baddbmm", "einsum"}
_SCORE_PATH = _FLOW | {"tanh"}  # soft-capped scores (Gemma-2) are still scores


def _is_scores(x: Any, depth: int = 10) -> bool:
    """x comes from a q·kᵀ contraction through casts / views / scalar scalings."""
    while isinstance(x, fx.Node) and depth > 0:
        name = op_name(x)
        if name in _CONTRACT:
            return True
        if name not in _SCORE_PATH or not x.args:
            return False
        x, depth = x.args[0], depth - 1
    return False


def _bookkeeping(user: fx.Node) -> bool:
    """export's guard call and tensor-metadata asserts: they read no values."""
    return (user.op == "call_module" and str(user.target).startswith("_guards")) or \
        op_name(user).startswith(("_assert", "sym_size", "sym_numel"))


def _module_mask_arg(user: fx.Node, node: fx.Node, root: torch.nn.Module) -> bool:
    """`node` is an argument named *mask* of a call_module `user` (positional ones by the
    module's forward signature)."""
    if any(v is node and "mask" in k.lower() for k, v in user.kwargs.items()):
        return True
    try:
        params = list(inspect.signature(root.get_submodule(str(user.target)).forward).parameters)
    except (AttributeError, TypeError, ValueError):
        return False
    return any(a is node and i < len(params) and "mask" in params[i].lower()
               for i, a in enumerate(user.args))


def used_as_attention_mask(node: fx.Node, root: torch.nn.Module | None = None,
                           limit: int = 400) -> bool:
    """True when the graph uses `node`'s value as an attention mask (see the module docstring),
    or not at all (only export's guard / metadata checks read it: e.g. a causal mask that
    nn.MultiheadAttention drops for is_causal=True), so no output depends on its values."""
    if all(_bookkeeping(u) for u in node.users):
        return True
    todo: list[tuple[fx.Node, bool]] = [(node, False)]  # (node, already on the scores)
    seen: set[tuple[fx.Node, bool]] = set()
    while todo and len(seen) < limit:
        n, scored = todo.pop()
        for u in n.users:
            name = op_name(u)
            if name == "scaled_dot_product_attention" and schema_args(u).get("attn_mask") is n:
                return True
            if u.op == "call_module" and root is not None and _module_mask_arg(u, n, root):
                return True
            if name in _SOFTMAX and scored and u.args and u.args[0] is n:
                return True
            if name == "baddbmm" and u.args and u.args[0] is n:
                on = True
            elif name in _FLOW:
                others = [a for a in (*u.args, *u.kwargs.values()) if a is not n]
                on = scored or (name in _ONTO and any(_is_scores(a) for a in others))
            else:
                continue
            if (u, on) not in seen:
                seen.add((u, on))
                todo.append((u, on))
    return False


def input_nodes(graph_module: fx.GraphModule, args: Sequence[Any], kwargs: dict[str, Any],
                names: Sequence[str]) -> list[fx.Node | None]:
    """The placeholder of each top-level input (args, then kwargs), None where it cannot be
    told: by name (`names`: each input's parameter name, "" when unknown; export and
    symbolic_trace name placeholders after the forward's parameters), else by position
    (torch.export: placeholders in pytree order of (args, kwargs))."""
    holders = [n for n in graph_module.graph.nodes if n.op == "placeholder"]
    by_target = {str(n.target): n for n in holders}
    out: list[fx.Node | None] = [by_target.get(name) if name else None for name in names]
    values = [*args, *kwargs.values()]
    sizes = [len(pytree.tree_leaves(v)) for v in values]
    if None in out and sum(sizes) == len(holders):
        at = 0
        for i, size in enumerate(sizes):
            if out[i] is None and size == 1:
                out[i] = holders[at]
            at += size
    return out
