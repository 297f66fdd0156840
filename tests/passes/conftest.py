"""Fixtures for the FX-pass tests: each zoo model is built, inspected and converted once."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import hjzoo
import pytest
import torch
from torch import nn


@dataclass
class Prepared:
    model: nn.Module
    inputs: Any
    report: Any
    converted: nn.Module
    checksum_before: str
    reference: Any  # the original's output before convert


@functools.cache
def prepare(name: str) -> Prepared:
    import hjplug

    base, _, impl = name.partition(":")
    if base in hjzoo.ZOO_HF:
        model, inputs = hjzoo.ZOO_HF[base](impl) if impl else hjzoo.ZOO_HF[base]()
    else:
        model, inputs = hjzoo.plain(base)
    before = hjzoo.checksum(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with torch.no_grad():
            reference = hjzoo.call(model, inputs, **_injected(model, inputs))
        report = hjplug.inspect(model, inputs)
        converted = hjplug.convert(model, inputs)
    return Prepared(model, inputs, report, converted, before, reference)


def _injected(model: nn.Module, inputs: Any) -> dict:
    import inspect

    if isinstance(inputs, dict) and "use_cache" in inspect.signature(model.forward).parameters:
        return {"use_cache": False}
    return {}


@pytest.fixture
def prepared() -> Any:
    return prepare
