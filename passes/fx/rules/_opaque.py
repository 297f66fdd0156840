"""Near-misses of the attention rule for opaque leaf calls (symbolic_trace keeps torch.nn
modules whole), with the causal-flag hint that makes torch.export succeed for nn.Transformer*.

nn.Transformer / nn.TransformerEncoder / nn.TransformerDecoder given a mask with their causal flag
left at None compare the mask with the causal one (`_detect_is_causal_mask`): a data-dependent
check torch.export cannot trace. Passing the flag explicitly skips it, and the right value
depends on the mask: True only for exactly the causal mask (PyTorch then drops the mask and
applies its own causal one), False for any other (applied as given) — True would replace a
non-causal mask and change the outputs.
"""

from __future__ import annotations

import torch
from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.match import NoMatch

__all__ = ["causal_flag_hint", "opaque_leaf"]

# the causal flags the module's forward detects from its mask when left at None
_CAUSAL_FLAGS: dict[type, tuple[tuple[str, str], ...]] = {
    torch.nn.Transformer: (("src_is_causal", "mask"), ("tgt_is_causal", "tgt_mask")),
    torch.nn.TransformerEncoder: (("is_causal", "mask"),),
    torch.nn.TransformerDecoder: (("tgt_is_causal", "tgt_mask"),),
}


def causal_flag_hint(mod: torch.nn.Module) -> str:
    """How to make torch.export succeed on `mod` given a mask: its causal flag(s), both values."""
    flags = _CAUSAL_FLAGS.get(type(mod))
    if flags is None:
        return ("for nn.Transformer* given a mask, pass its causal flag explicitly: True only "
                "for exactly the causal mask, False for any other mask")
    parts = [f"{flag}=True only when {mask} is exactly the causal mask (PyTorch then drops it "
             f"for its own causal mask), {flag}=False for any other mask (applied as given; "
             "True would replace it and change the outputs)" for flag, mask in flags]
    names = " / ".join(f for f, _ in flags)
    return (f"nn.{type(mod).__name__} given a mask with {names} unset checks it against the "
            f"causal mask, data-dependently, which torch.export cannot trace: pass "
            f"{'; '.join(parts)}")


def opaque_leaf(ctx: RuleContext, node: fx.Node, rule: str) -> NoMatch | None:
    """A near-miss for a call_module leaf that holds nn.MultiheadAttention blocks: their ops are
    not in the graph, so no rule sees them."""
    try:
        mod = ctx.graph_module.get_submodule(str(node.target))
    except AttributeError:
        return None
    n = sum(isinstance(m, torch.nn.MultiheadAttention) for m in mod.modules())
    if not n:
        return None
    return NoMatch(rule, node.name, str(node.target),
                   f"{n} nn.MultiheadAttention block(s) inside the opaque call of "
                   f"{type(mod).__name__} (captured by symbolic_trace, which keeps torch.nn "
                   "modules whole): not read; make torch.export succeed (see the capture note; "
                   f"{causal_flag_hint(mod)})", sticky=True)
