"""Errors hjplug raises: each says what was expected, what was found, where, and what to do."""

from __future__ import annotations

from typing import Any

__all__ = ["HJPlugError", "InvalidArgumentError", "describe"]


class HJPlugError(Exception):
    """Base of every error hjplug raises on purpose (the CLI prints these without traceback)."""


def describe(value: Any) -> str:
    """Short, readable rendering of a received value (tensors by shape/dtype, not by content)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"tensor of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class InvalidArgumentError(HJPlugError, ValueError):
    """An argument outside its domain: names it, the expectation and the received value."""

    def __init__(
        self, name: str, expected: str, got: Any, where: str = "", hint: str = ""
    ) -> None:
        self.name, self.expected, self.got, self.where, self.hint = name, expected, got, where, hint
        place = f"{where}: " if where else ""
        tail = f" {hint}" if hint else ""
        super().__init__(
            f"{place}argument '{name}' must be {expected}; got {describe(got)}.{tail}"
        )
