"""What the attention rule reads besides the chain itself: a number computed from constants or
shapes (a scale), a query pre-scaled before its head split (s₀), and the head count with its
evidence (also for 3-D scores with batch·heads merged in one axis)."""

from __future__ import annotations

import math

import numpy as np

from hjplug.passes.onnx.graph import GraphIndex

__all__ = ["heads_of", "number", "query_prescale"]


def number(g: GraphIndex, value: str) -> float | None:
    """One number: a constant, or computed from shapes only (the TorchScript exporter's SDPA
    scale √(1/√(Shape(q)[-1])), folded with the static head size)."""
    c = g.scalar(value)
    if c is not None:
        return c
    arr = g.fold(value)
    if arr is None or arr.size != 1 or not np.issubdtype(arr.dtype, np.number):
        return None
    return float(arr.reshape(()))


_VIEWS = {"Reshape", "Transpose", "Cast", "Identity", "Squeeze", "Unsqueeze"}


def query_prescale(g: GraphIndex, value: str, depth: int = 6) -> float | None:
    """s₀ when the query reaches Q·Kᵀ as q_proj(x)·s₀ (or /c), a positive constant ≠ 1, through
    views only, each value on the way used once (OPT / BART / Whisper scale q before the head
    split); None otherwise. A number commutes with every view, so the logits are
    s₀·q_proj(x)·kᵀ and ε = 1/(s₀·s) in q_proj(x)'s units, as the FX pass records it."""
    for _ in range(depth):
        i = g.producer_of(value)
        if i is None or len(g.users(value)) != 1 or value in g.graph_outputs:
            return None
        n = g.nodes[i]
        if n.op_type in ("Mul", "Div"):
            c = number(g, n.input[1])
            if c is None and n.op_type == "Mul":
                c = number(g, n.input[0])
            if c is None or c <= 0 or c == 1.0 or not math.isfinite(c):
                return None
            return c if n.op_type == "Mul" else 1.0 / c
        if n.op_type not in _VIEWS:
            return None
        value = n.input[0]
    return None


def heads_of(g: GraphIndex, qk: int, chain: list[int]) -> tuple[int | None, str]:
    """The head count and the evidence for it (or why it is unknown): axis −3 of 4-D scores,
    else of the Reshape in the block that splits 3-D (batch·heads, q, k) scores into
    (…, heads, q, k) (Bloom's baddbmm), its target folded from constants and shapes."""
    scores = g.nodes[qk].output[0]
    ss = g.shape(scores)
    if ss is not None and len(ss) >= 4:
        h = ss[-3]
        if isinstance(h, int):
            return h, f"heads = {h}: axis −3 of the scores {g.name(qk)}"
        return None, f"heads unknown: axis −3 of the scores {g.name(qk)} is symbolic ({h!r})"
    splits = [j for j in chain if g.nodes[j].op_type == "Reshape"
              and len(g._shape_of(g.nodes[j].output[0], 8) or ()) >= 4]
    for j in splits:
        h = (g._shape_of(g.nodes[j].output[0], 8) or [None] * 3)[-3]
        if isinstance(h, int | np.integer) and h > 0:
            return int(h), (f"heads = {h}: Reshape {g.name(j)} splits the merged scores into "
                            f"(…, {h}, q, k)")
    if splits:
        return None, (f"heads unknown: Reshape {g.name(splits[0])} splits the merged scores, "
                      "but its head dim is not a constant")
    if ss is None:
        return None, f"heads unknown: no shape for the scores {g.name(qk)}"
    if len(ss) < 3:
        return None, f"heads unknown: {len(ss)}-D scores {g.name(qk)} carry no head axis"
    return None, (f"heads unknown: {len(ss)}-D scores {g.name(qk)} (batch·heads merged in one "
                  "axis) and no Reshape in the block splits them into (…, heads, q, k)")
