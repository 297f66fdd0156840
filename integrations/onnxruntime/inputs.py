"""What gets exported: the module, its example inputs (named), output names and dynamic axes.

Hugging Face models are exported through `HFOutputs`, a thin wrapper with named keyword inputs
that calls the model with `use_cache=False, return_dict=True` and returns its tensors as a flat
tuple (cache objects in outputs break export). Its child is called `m`; the exporter module
strips that prefix again so block paths equal the model's own module paths.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.errors import HJPlugError
from hjplug.integrations.onnxruntime.records import ExportError

__all__ = ["HF_INPUTS", "HFOutputs", "Prepared", "is_hf_model", "prepare", "synthesize"]

# keyword inputs the wrapper forwards (others are refused with a clear message)
HF_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "pixel_values",
             "decoder_input_ids", "decoder_attention_mask", "inputs_embeds", "input_values",
             "input_features", "pixel_mask")
_SEQ_INPUTS = {"input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
               "input_values", "input_features"}


def is_hf_model(model: nn.Module) -> bool:
    return getattr(model, "config", None) is not None and hasattr(model, "main_input_name")


class HFOutputs(nn.Module):
    """`m(**inputs, use_cache=False, return_dict=True)` as a flat tuple of its tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.m = model
        params = inspect.signature(model.forward).parameters
        self.extra: dict[str, Any] = {"return_dict": True}
        if "use_cache" in params:
            self.extra["use_cache"] = False

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                pixel_values: Tensor | None = None, decoder_input_ids: Tensor | None = None,
                decoder_attention_mask: Tensor | None = None, inputs_embeds: Tensor | None = None,
                input_values: Tensor | None = None, input_features: Tensor | None = None,
                pixel_mask: Tensor | None = None) -> tuple[Tensor, ...]:
        given = {k: v for k, v in locals().items() if k in HF_INPUTS and v is not None}
        return tuple(_named_tensors(self.m(**given, **self.extra)).values())

    def output_names(self, kwargs: dict[str, Tensor]) -> tuple[str, ...]:
        with torch.no_grad():
            return tuple(_named_tensors(self.m(**kwargs, **self.extra)))


def _named_tensors(out: Any) -> dict[str, Tensor]:
    """A model output's top-level tensors by name (ModelOutput / dict keys; output_<i> for a
    tuple); caches and other non-tensors are dropped."""
    if hasattr(out, "items"):
        return {k: v for k, v in out.items() if isinstance(v, Tensor)}
    leaves = [x for x in torch.utils._pytree.tree_leaves(out) if isinstance(x, Tensor)]
    return {f"output_{i}": x for i, x in enumerate(leaves)}


class PositionalHF(nn.Module):
    """The same call with positional inputs in `names` order (for the TorchScript exporter)."""

    def __init__(self, wrapper: HFOutputs, names: tuple[str, ...]) -> None:
        super().__init__()
        self.m = wrapper.m
        self.extra, self.names = wrapper.extra, names

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        out = self.m(**dict(zip(self.names, args, strict=True)), **self.extra)
        return tuple(_named_tensors(out).values())


@dataclass(frozen=True)
class Prepared:
    """module/args/kwargs: what torch.onnx.export receives; names of inputs and outputs;
    `axes`: the dynamic axes asked for (input → {axis: symbolic name}); `wrapped`: paths in
    the export carry the wrapper's 'm' prefix."""

    model: nn.Module
    module: nn.Module
    args: tuple[Tensor, ...]
    kwargs: dict[str, Tensor]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    axes: dict[str, dict[int, str]] = field(default_factory=dict)
    wrapped: bool = False
    notes: tuple[str, ...] = ()

    def feeds(self) -> dict[str, Tensor]:
        """Input name → example tensor."""
        return dict(zip(self.input_names, (*self.args, *self.kwargs.values()), strict=True))

    def legacy_module(self) -> tuple[nn.Module, tuple[Tensor, ...]]:
        """Module and positional args for the TorchScript exporter."""
        if isinstance(self.module, HFOutputs):
            # eval: the TorchScript exporter restores the wrapper's mode onto the model after
            wrapper = PositionalHF(self.module, self.input_names).eval()
            return wrapper, tuple(self.kwargs.values())
        return self.module, (*self.args, *self.kwargs.values())


def synthesize(model: nn.Module, *, batch: int = 2, seq: int = 16) -> dict[str, Tensor]:
    """Example inputs of a Hugging Face model from its config (seeded): token ids + mask (+
    decoder ids), or pixel values. Batch 2 and sequence 16, so both axes can stay dynamic."""
    from hjplug.passes.inputs import synthesize_inputs

    try:
        return synthesize_inputs(model, batch=batch, seq=seq)
    except HJPlugError as err:
        raise ExportError(str(err)) from None


def _roles(name: str, t: Tensor, hf: bool) -> dict[int, str]:
    """Which axes of input `name` are batch / sequence."""
    if t.dim() == 0:
        return {}
    roles = {0: "batch"}
    if name.startswith("decoder_") and t.dim() >= 2:
        roles[1] = "decoder_sequence"
    elif (name in _SEQ_INPUTS or not hf) and 2 <= t.dim() <= 3:
        roles[1] = "sequence"
    return roles


Dynamic = bool | Mapping[str, Mapping[int, str]]


def _explicit(model: nn.Module, prep: Prepared, dynamic: Dynamic) -> Prepared:
    """`dynamic` given as {input: {axis: name}} replaces the batch / sequence guess."""
    if isinstance(dynamic, bool):
        return prep
    bad = [k for k in dynamic if k not in prep.input_names]
    if bad:
        raise ExportError(f"export_onnx({type(model).__name__}): dynamic names input(s) {bad}; "
                          f"the inputs are {list(prep.input_names)}.")
    return replace(prep, axes={k: {int(a): str(n) for a, n in v.items()}
                               for k, v in dynamic.items()})


def prepare(model: nn.Module, example_inputs: Any, dynamic: Dynamic) -> Prepared:
    """Normalise `example_inputs` (None for HF models, a tensor, a tuple of tensors, or a dict
    of keyword tensors) into a `Prepared` export; `dynamic`: True (batch / sequence axes by
    input kind), False, or explicit {input: {axis: name}}."""
    return _explicit(model, _prepare(model, example_inputs, bool(dynamic)), dynamic)


def _prepare(model: nn.Module, example_inputs: Any, dynamic: bool) -> Prepared:
    hf = is_hf_model(model)
    notes: list[str] = []
    if example_inputs is None:
        if not hf:
            raise ExportError(f"export_onnx({type(model).__name__}) needs example_inputs (a "
                              "tensor, a tuple of tensors, or a dict of keyword tensors).")
        example_inputs = synthesize(model)
        notes.append("example inputs synthesised from the config (batch 2, sequence 16)")
    if isinstance(example_inputs, Tensor):
        example_inputs = (example_inputs,)
    if hf and isinstance(example_inputs, list | tuple):  # bind positional inputs by name
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        example_inputs = dict(zip(params, example_inputs, strict=False))
    if hf and isinstance(example_inputs, dict):
        kwargs = {k: v for k, v in example_inputs.items() if v is not None}
        bad = [k for k, v in kwargs.items() if k not in HF_INPUTS or not isinstance(v, Tensor)]
        if bad:
            raise ExportError(f"export_onnx({type(model).__name__}): example input(s) {bad} "
                              f"not supported; expected tensors among {', '.join(HF_INPUTS)}. "
                              "Wrap the model in a module with tensor inputs to export it.")
        if dynamic and kwargs and all(v.dim() >= 1 and v.shape[0] == 1 for v in kwargs.values()):
            kwargs = {k: torch.cat([v, v]) for k, v in kwargs.items()}
            notes.append("batch-1 example inputs repeated to batch 2 for tracing, so the "
                         "batch axis stays dynamic")
        wrapper = HFOutputs(model).eval()
        names = tuple(kwargs)
        axes = {k: _roles(k, v, True) for k, v in kwargs.items()} if dynamic else {}
        return Prepared(model, wrapper, (), kwargs, names, wrapper.output_names(kwargs),
                        axes, True, tuple(notes))
    if isinstance(example_inputs, dict):
        kwargs = dict(example_inputs)
        args: tuple[Tensor, ...] = ()
        names = tuple(kwargs)
    elif isinstance(example_inputs, list | tuple):
        args, kwargs = tuple(example_inputs), {}
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = tuple(params[i] if i < len(params) else f"input_{i}" for i in range(len(args)))
    else:
        raise ExportError(f"export_onnx({type(model).__name__}): example_inputs must be a "
                          "tensor, a tuple of tensors or a dict of keyword tensors; got "
                          f"{type(example_inputs).__name__}.")
    values = (*args, *kwargs.values())
    if not all(isinstance(v, Tensor) for v in values):
        raise ExportError(f"export_onnx({type(model).__name__}): every example input must be a "
                          "tensor; bind other arguments in a wrapper module.")
    with torch.no_grad():
        out = model(*args, **kwargs)
    leaves = [x for x in torch.utils._pytree.tree_leaves(out) if isinstance(x, Tensor)]
    outs = ("output",) if len(leaves) == 1 else tuple(f"output_{i}" for i in range(len(leaves)))
    axes = {n: _roles(n, v, False) for n, v in zip(names, values, strict=True)} if dynamic \
        else {}
    return Prepared(model, model, args, kwargs, names, outs, axes, False, tuple(notes))
