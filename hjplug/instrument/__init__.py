"""hjplug.instrument — ε-instrumentation: record, deform, sweep, attribute, find folds.

    with hjplug.instrument(model, stats=("epsilon", "entropy", "lse", "gap", "topk",
                                         "curvature")) as rec:
        model(**inputs)
    rec["layers.3.attn.entropy"]            # [B, H, Sq]; names: hjplug.instrument.names
    rec.summary()                           # per layer × head: ε, H/log k, particle/mixed/wave
    sw = hjplug.sweep(model, inputs, scales=torch.logspace(-2, 1, 40))
    sw.entropy                              # [scale, layer, head]; sw.violations; sw.folds
    attr = hjplug.attribute(model, inputs, layer=3, head=5, topk=10)   # π_j = ∂f/∂b_j

The package module is itself callable (`hjplug.instrument(model, ...)` works whether Python
resolved `hjplug.instrument` to this package or to the function).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from hjplug.instrument.attribute import attribute
from hjplug.instrument.context import deform, instrument
from hjplug.instrument.names import DEFAULT_STATS, PRODUCES, STATS
from hjplug.instrument.recorder import Recorder, UnknownHookError
from hjplug.instrument.records import (
    Attribution,
    HeadSummary,
    MonotonicityViolation,
    Summary,
    SweepResult,
    regime,
)
from hjplug.instrument.sweep import sweep

__all__ = [
    "DEFAULT_STATS",
    "PRODUCES",
    "STATS",
    "Attribution",
    "HeadSummary",
    "MonotonicityViolation",
    "Recorder",
    "Summary",
    "SweepResult",
    "UnknownHookError",
    "attribute",
    "deform",
    "instrument",
    "regime",
    "sweep",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return instrument(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
