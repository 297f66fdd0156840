"""The hook point for per-head ε-statistics: recorders attached to an enabled model.

A recorder is a callable receiving one `AttentionStats` per attention call (path, ε_h, lse,
HJ value, entropy, normalised entropy H/log k with k = unmasked keys). Attached only inside
`with record(model, callback):`; on exit (also after an exception) the model holds exactly the
recorders it held before. Off = free: with no recorder, no deformation and stats=False the stock
SDPA call runs and nothing is computed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from hjplug.errors import InvalidArgumentError
from hjplug.integrations.huggingface.records import AttentionStats, Recorder
from hjplug.integrations.huggingface.switch import states

__all__ = ["last_stats", "record"]


@contextmanager
def record(model: nn.Module, callback: Recorder, topk: int = 0) -> Iterator[Recorder]:
    """Deliver every attention call's AttentionStats to `callback` inside the context.

    topk > 0 adds the k largest Gibbs weights π_ij and their key indices to the statistics.
    """
    where = "hjplug.integrations.huggingface.record"
    if not callable(callback):
        raise InvalidArgumentError("callback", "a callable taking one AttentionStats", callback,
                                   where=where)
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 0:
        raise InvalidArgumentError("topk", "an int ≥ 0 (0 = no top-k weights)", topk,
                                   where=where)
    sts = states(model, "record")
    for st in sts:
        st.recorders.append(callback)
        st.topk.append(topk)
    try:
        yield callback
    finally:
        for st in sts:
            # remove this exact entry (identity), leaving other recorders (nested contexts) alone
            for j in range(len(st.recorders) - 1, -1, -1):
                if st.recorders[j] is callback:
                    del st.recorders[j]
                    del st.topk[j]
                    break


def last_stats(model: nn.Module) -> list[AttentionStats | None]:
    """The statistics of each block's last call (models enabled with stats=True)."""
    return [st.last for st in states(model, "last_stats")]
