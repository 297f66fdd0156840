"""Example inputs for a Hugging Face model, synthesised from its config (seeded, no download).

Shared by capture (`hjplug.inspect` / `hjplug.convert`) and the ONNX export.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from hjplug.errors import HJPlugError

__all__ = ["accepted_inputs", "synthesize_inputs"]


def accepted_inputs(model: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """The entries of `inputs` that `model.forward` accepts (attention_mask also via **kwargs)."""
    params = inspect.signature(model.forward).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in inputs.items() if k in params or k == "attention_mask"}
    return {k: v for k, v in inputs.items() if k in params}


def synthesize_inputs(model: nn.Module, config: Any = None, *, batch: int = 1, seq: int = 16
                      ) -> dict[str, Any]:
    """Token ids + attention mask (+ decoder ids), or pixel values, from the config (seed 0),
    on the device of the model's parameters (pixel values in their floating dtype)."""
    config = config if config is not None else getattr(model, "config", None)
    g = torch.Generator().manual_seed(0)
    param = next(iter(model.parameters()), None)
    dev = param.device if param is not None else torch.device("cpu")
    fdt = param.dtype if param is not None and param.is_floating_point() else torch.float32
    main = getattr(model, "main_input_name", "input_ids")
    if main == "input_ids":
        vocab = int(getattr(config, "vocab_size", 0) or 0)
        if vocab <= 0:
            raise HJPlugError(f"cannot synthesise token ids for {type(model).__name__}: its "
                              "config has no vocab_size; pass example_inputs.")
        ids = torch.randint(0, vocab, (batch, seq), generator=g).to(dev)  # [B, S]
        inputs: dict[str, Any] = {
            "input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.long,
                                                           device=dev)}
        if getattr(config, "is_encoder_decoder", False):
            inputs["decoder_input_ids"] = ids
        return accepted_inputs(model, inputs)
    if main == "pixel_values":
        size = getattr(config, "image_size", 224)
        h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
        chans = int(getattr(config, "num_channels", 3))
        pixels = torch.randn(batch, chans, h, w, generator=g)  # [B, C, H, W]
        return {"pixel_values": pixels.to(dev, fdt)}
    raise HJPlugError(f"cannot synthesise inputs for main input {main!r} of "
                      f"{type(model).__name__}; pass example_inputs.")
