"""Which 2-D mask marks the query rows of each attention step of an `hjplug.convert` result.

The captured graph keeps the model's inputs as placeholders ("attention_mask",
"decoder_input_ids", …). A step whose queries depend on the decoder inputs has decoder queries:
its rows are marked by "decoder_attention_mask" (self- and cross-attention alike). Otherwise a
step whose mask / bias inputs depend on "attention_mask" has its rows marked by that mask; a step
the mask never reaches (a CLIP vision tower) has none, whatever its shape.
"""

from __future__ import annotations

from typing import Any

from torch import fx, nn

__all__ = ["DECODER_INPUTS", "fx_mask_scopes"]

DECODER_INPUTS = ("decoder_input_ids", "decoder_inputs_embeds")


def _descendants(start: fx.Node) -> set[fx.Node]:
    """Every node computed from `start` (itself included)."""
    seen, todo = {start}, [start]
    while todo:
        for user in todo.pop().users:
            if user not in seen:
                seen.add(user)
                todo.append(user)
    return seen


def fx_mask_scopes(model: Any) -> dict[nn.Module, str | None]:
    """Attention step → the keyword input whose 2-D mask marks its query rows (None: no mask
    does). {} when the graph shows no such routing (the top-level rule then applies as is)."""
    from hjplug.instrument._fx import attention_steps

    gm = getattr(model, "graph_module", None)
    if not isinstance(gm, fx.GraphModule):
        return {}
    holders = {n.name: n for n in gm.graph.nodes if n.op == "placeholder"}
    if "attention_mask" not in holders and "decoder_attention_mask" not in holders:
        return {}
    steps = {id(s): s for _, s in attention_steps(model)}
    enc = _descendants(holders["attention_mask"]) if "attention_mask" in holders else set()
    dec: set[fx.Node] = set()
    for name in DECODER_INPUTS:
        if name in holders:
            dec |= _descendants(holders[name])
    out: dict[nn.Module, str | None] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(node.target, str):
            continue
        step = gm.get_submodule(node.target)
        if id(step) not in steps or not node.args:
            continue
        side = [a for a in node.args[3:] if isinstance(a, fx.Node)]
        if node.args[0] in dec:
            out[step] = "decoder_attention_mask"
        elif any(a in enc for a in side):
            out[step] = "attention_mask"
        else:
            out[step] = None
    if enc and not any(v == "attention_mask" for v in out.values()):
        return {}  # the mask reaches no step's mask input: keep the top-level rule
    return out
