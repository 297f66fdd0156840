"""PyTorch fast paths that a captured graph does not take, noted at capture time.

An eval-mode `nn.TransformerEncoder` (enable_nested_tensor=True, the default) called with a
`src_key_padding_mask` and no `mask` runs, under torch.no_grad / inference_mode, on PyTorch's fast
path: it packs the rows into a nested tensor and pads the result back with 0, so padded positions
come out as 0 (or its final norm of 0). torch.export never takes that path (the encoder checks
torch.compiler.is_compiling), so the captured graph — and a model converted from it — computes
the padded positions like the encoder's standard forward. The difference there is PyTorch's, not
hjplug's; a capture note says so.

    with encoder_fast_path_notes(model) as notes:   # forward pre-hooks, removed on exit
        torch.export.export(model, ...)
    notes  # one line per encoder that received a padding mask
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["encoder_fast_path_notes"]


def _note(path: str) -> str:
    return (f"nn.TransformerEncoder {path!r} received a src_key_padding_mask: called eagerly in "
            "eval mode under torch.no_grad() / torch.inference_mode() with padding at the end of "
            "each row, PyTorch runs it on its fast path (nested tensors), which returns 0 at "
            "padded positions (the final norm of 0 where the encoder has one). The captured "
            "graph and the converted model compute those positions, as the encoder's standard "
            "(non-fast-path) forward does, and match that forward (elsewhere the fast path agrees "
            "to float rounding, ~1e-6): compare against the model under "
            "torch.backends.mha.set_fastpath_enabled(False), or ignore the padded positions.")


def _takes_fast_path(mod: nn.TransformerEncoder, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> bool:
    """The fast-path conditions known without the tensors' values (torch.export runs the hook
    on fake tensors): nested tensors enabled, fast path on, a batched src, a padding mask and
    no attention mask. The mask's alignment (padding at the end) and autograd are the caller's."""
    try:
        bound = inspect.signature(mod.forward).bind(*args, **kwargs)
    except TypeError:
        return False
    src = bound.arguments.get("src")
    return (bool(getattr(mod, "use_nested_tensor", False))
            and torch.backends.mha.get_fastpath_enabled()
            and isinstance(src, torch.Tensor) and src.dim() == 3
            and bound.arguments.get("src_key_padding_mask") is not None
            and bound.arguments.get("mask") is None)


@contextlib.contextmanager
def encoder_fast_path_notes(model: nn.Module) -> Iterator[list[str]]:
    """Yield a list that fills, while the block runs, with one note per nn.TransformerEncoder
    of `model` called as its fast path would take it (each path once)."""
    notes: list[str] = []
    handles = []

    def watch(path: str) -> Any:
        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if (isinstance(mod, nn.TransformerEncoder) and _note(path) not in notes
                    and _takes_fast_path(mod, args, kwargs)):
                notes.append(_note(path))
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, nn.TransformerEncoder) and getattr(mod, "use_nested_tensor", False):
            handles.append(mod.register_forward_pre_hook(watch(name or "(root)"),
                                                         with_kwargs=True))
    try:
        yield notes
    finally:
        for h in handles:
            h.remove()
