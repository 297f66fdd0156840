"""Up-front checks of a report request (`--query`, `--fold-head`) against the loaded model.

Run before any stage, so a bad index is refused with one message instead of failing a stage
after minutes of work. What cannot be known without a forward (heads of an FX-converted block,
the length of a non-token input) is left to the stage itself.
"""

from __future__ import annotations

from typing import Any

from hjplug.errors import InvalidArgumentError

__all__ = ["attention_layout", "check_request", "check_syntax", "n_tokens"]

_HINT_QUERY = "Pass a token position in that range, or omit --query for the middle token."
_HINT_HEAD = ("Pass LAYER,HEAD in those ranges (`hjplug stats MODEL` lists the heads), or omit "
              "--fold-head for the least focused head.")


def attention_layout(model: Any) -> list[int | None] | None:
    """Query heads per attention block (block index = the report's layer; None where only a
    forward would tell), or None when the model has no attention blocks hjplug can address."""
    from hjplug.instrument._fx import is_fx
    from hjplug.instrument._hf import is_hf

    if is_hf(model):
        from hjplug.integrations.huggingface.blocks import attention_blocks, module_heads

        return [module_heads(m)[0] for _, m, _ in attention_blocks(model)]
    if is_fx(model):
        from hjplug.instrument._fx import attention_steps

        return [None] * len(attention_steps(model))
    return None


def n_tokens(inputs: Any) -> int | None:
    """Sequence length of the token input (input_ids [B, S]); None without one."""
    ids = inputs.get("input_ids") if isinstance(inputs, dict) else None
    shape = getattr(ids, "shape", None)
    return int(shape[-1]) if shape else None


def check_syntax(query: int | None, fold_head: tuple[int, int] | None) -> None:
    """Model-independent checks (no negative indices), before the model is loaded."""
    if query is not None and (isinstance(query, bool) or not isinstance(query, int) or query < 0):
        raise InvalidArgumentError("--query", "a token position ≥ 0", query, hint=_HINT_QUERY)
    if fold_head is not None and not (
            len(fold_head) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                        for x in fold_head)):
        raise InvalidArgumentError("--fold-head", "LAYER,HEAD: two integers ≥ 0", fold_head,
                                   hint=_HINT_HEAD)


def check_request(loaded: Any, query: int | None, fold_head: tuple[int, int] | None) -> None:
    """Raise InvalidArgumentError (what was expected, what was found, what to do) when `query`
    or `fold_head` does not exist in the loaded model; silent where the model cannot tell."""
    check_syntax(query, fold_head)
    if query is not None:
        n = n_tokens(loaded.inputs)
        if n is not None and query >= n:
            raise InvalidArgumentError("--query", f"a token position in [0, {n}) (the input has "
                                       f"{n} tokens)", query, hint=_HINT_QUERY)
    if fold_head is None:
        return
    layout = attention_layout(loaded.model)
    if layout is None:
        return
    layer, head = fold_head
    if not layout:
        raise InvalidArgumentError("--fold-head", "a head of an attention block, but the model "
                                   "has none", fold_head, hint="Omit --fold-head.")
    if layer >= len(layout):
        raise InvalidArgumentError("--fold-head", f"LAYER in [0, {len(layout)}) (the model has "
                                   f"{len(layout)} attention blocks)", fold_head, hint=_HINT_HEAD)
    heads = layout[layer]
    if heads is not None and head >= heads:
        raise InvalidArgumentError("--fold-head", f"HEAD in [0, {heads}) (attention block "
                                   f"{layer} has {heads} heads)", fold_head, hint=_HINT_HEAD)
