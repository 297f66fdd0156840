"""hjplug.integrations.huggingface — transformers models stay transformers models.

    register()                                  attn_implementation="hjplug" (+ its mask function)
    enable(model, inplace=False, stats=False)   → enabled model (a deep copy unless inplace)
    disable(model, implementation=None)         → model with its original implementation restored
    is_enabled(model) -> bool
    specs(model) -> list[HJSpec]                one record per attention module (no capture)
    deform(model, scale, layers=None, heads=None) -> Deformation   (persistent; also a context)
    record(model, callback, topk=0)             context: callback(AttentionStats) per call
    last_stats(model)                           last AttentionStats per block (stats=True)
    FAMILIES, GENERIC, Family                   the declarative family entries
    valid_implementations(), check_implementation(name, where), is_registered(),
    hjplug_attention_forward (the function registered under "hjplug")

Importing this package loads neither torch nor transformers; each name loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.integrations.huggingface.deformation import Deformation as Deformation
    from hjplug.integrations.huggingface.deformation import deform as deform
    from hjplug.integrations.huggingface.families import FAMILIES as FAMILIES
    from hjplug.integrations.huggingface.families import GENERIC as GENERIC
    from hjplug.integrations.huggingface.families import Family as Family
    from hjplug.integrations.huggingface.recording import last_stats as last_stats
    from hjplug.integrations.huggingface.recording import record as record
    from hjplug.integrations.huggingface.records import AttentionStats as AttentionStats
    from hjplug.integrations.huggingface.registration import register as register
    from hjplug.integrations.huggingface.registration import (
        valid_implementations as valid_implementations,
    )
    from hjplug.integrations.huggingface.switch import disable as disable
    from hjplug.integrations.huggingface.switch import enable as enable
    from hjplug.integrations.huggingface.switch import is_enabled as is_enabled
    from hjplug.integrations.huggingface.switch import specs as specs

_P = "hjplug.integrations.huggingface."
_LAZY: dict[str, str] = {
    "register": "registration", "valid_implementations": "registration",
    "is_registered": "registration", "check_implementation": "registration",
    "enable": "switch", "disable": "switch", "is_enabled": "switch", "specs": "switch",
    "deform": "deformation", "Deformation": "deformation",
    "record": "recording", "last_stats": "recording",
    "AttentionStats": "records",
    "FAMILIES": "families", "GENERIC": "families", "Family": "families",
    "hjplug_attention_forward": "attention",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_P + module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
