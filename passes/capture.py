"""Capture a model into an FX graph: torch.export (non-strict) first, symbolic_trace as fallback.

    capture(model, example_inputs) -> Captured(graph_module, method, ...)

Hugging Face models are exported with `use_cache=False` (cache objects in outputs break export).
Failures raise `CaptureError` naming the model class, the failing module / op when known, and what
to try. The model is put in eval mode for the capture and restored afterwards.
"""

from __future__ import annotations

import contextlib
import inspect as _inspect
import io
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from hjplug.errors import HJPlugError
from hjplug.passes.fx.fast_path import encoder_fast_path_notes

__all__ = ["CaptureError", "Captured", "NonFiniteInputError", "capture", "normalize_inputs"]


class CaptureError(HJPlugError):
    """The model could not be captured into a graph."""


class NonFiniteInputError(HJPlugError):
    """An example input holds NaN or Inf values."""


@dataclass(frozen=True)
class Captured:
    """A captured model: the (unlifted) GraphModule, how it was obtained, and the call it fits."""

    graph_module: fx.GraphModule
    method: str  # "torch.export" | "symbolic_trace"
    model_class: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    injected: dict[str, Any] = field(default_factory=dict)  # kwargs hjplug added (use_cache)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()


def normalize_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """dict / BatchEncoding → kwargs; tuple/list → args; a single tensor → (tensor,)."""
    if example_inputs is None:
        return (), {}
    if isinstance(example_inputs, Mapping):
        return (), dict(example_inputs)
    if isinstance(example_inputs, tuple | list):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


_MASK_WORDS = ("mask", "bias")  # fallback: a −inf input the graph cannot place, named so


def _input_names(model: nn.Module | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(label, parameter name, value) per input; positional names from model.forward."""
    names: list[str] = []
    if model is not None and args:
        try:
            params = list(_inspect.signature(model.forward).parameters.values())
        except (TypeError, ValueError):
            params = []
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    pos = [(f"argument {i}" + (f" ({names[i]})" if i < len(names) else ""),
            names[i] if i < len(names) else "", a) for i, a in enumerate(args)]
    return pos + [(k, k, v) for k, v in kwargs.items()]


def check_finite(args: tuple[Any, ...], kwargs: dict[str, Any],
                 model: nn.Module | None = None,
                 graph_module: fx.GraphModule | None = None) -> None:
    """Refuse NaN / ±Inf example inputs: under torch.export the values never shape the graph,
    but a NaN or Inf input (usually bad data upstream) makes every output and ε-statistic of
    the example NaN, so it is reported here, at the boundary. Exception: −inf in a float input
    the captured `graph_module` uses as an attention mask (hjplug.passes.fx.mask_inputs: added
    onto q·kᵀ scores before the softmax, SDPA's attn_mask) is hjplug's removed-key convention
    (b_j = −∞, attention_bias.REMOVED_BELOW; e.g. nn.Transformer.generate_square_subsequent_mask).
    Without a graph (before capture) −inf is left for the call with the graph; an input the
    graph cannot place falls back to its name (*mask* / *bias*)."""
    from hjplug.passes.fx.mask_inputs import input_nodes, used_as_attention_mask

    entries = _input_names(model, args, kwargs)
    nodes: list[Any] = ([None] * len(entries) if graph_module is None else
                        input_nodes(graph_module, args, kwargs, [p for _, p, _ in entries]))
    for (name, param, value), node in zip(entries, nodes, strict=True):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            nan = int(torch.isnan(value).sum())
            neg = int(torch.isneginf(value).sum())
            inf = int(torch.isinf(value).sum())
            if not nan and inf == neg and (graph_module is None or not neg):
                continue
            if node is not None:
                is_mask = used_as_attention_mask(node, graph_module)
            else:
                is_mask = any(w in param.lower() for w in _MASK_WORDS)
            if nan or inf > (neg if is_mask else 0):
                why = ("; −inf is accepted only in float mask inputs the model uses as an "
                       "attention mask (added onto the q·kᵀ scores before the softmax, or SDPA's "
                       "attn_mask: removed keys), and this one is not" if neg and not is_mask
                       else "")
                raise NonFiniteInputError(
                    f"example input {name!r} ({tuple(value.shape)}) holds {nan} NaN and {inf} Inf "
                    f"values out of {value.numel()}; hjplug reads blocks from finite example "
                    f"inputs{why} — clean or replace them (e.g. torch.nan_to_num) and try again."
                )


_NOISY_LOGGERS = ("torch.fx.experimental.symbolic_shapes", "torch._export", "torch.export",
                  "torch._dynamo", "torch._functorch", "torch._subclasses.fake_tensor")
# fake_tensor logs a failing op's whole traceback at ERROR level before re-raising it: the
# capture's own message reports that failure, so only its CRITICAL records pass
_SILENT_BELOW = {"torch._subclasses.fake_tensor": logging.CRITICAL}


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch logs (and prints to stderr) whole graphs on a failed export; hjplug reports the
    failure itself. Output of a capture that succeeds (warnings) is passed on unchanged."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(_SILENT_BELOW.get(lg.name, logging.ERROR))
    buffer = io.StringIO()
    ok = False
    try:
        with contextlib.redirect_stderr(buffer), warnings.catch_warnings():
            # nn.LSTM/GRU/RNN re-assign _flat_weights under export: harmless, and not the user's
            warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
            yield
        ok = True
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if ok:
            sys.stderr.write(buffer.getvalue())


def _accepts(model: nn.Module, name: str) -> bool:
    try:
        params = _inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _failing_module(exc: BaseException) -> str:
    """Best-effort 'module / op' hint from an export traceback."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and "torch" not in type(owner).__module__.split(".")[0]:
            where = f"{type(owner).__name__}.{frame.f_code.co_name} ({frame.f_code.co_filename}:" \
                    f"{tb.tb_lineno})"
        tb = tb.tb_next
    return where


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def dynamic_shapes_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Dim.AUTO for the batch and sequence dims of every tensor input (batch only for images)."""
    from torch.export import Dim

    def spec(name: str, value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return None
        if value.dim() >= 4 or name == "pixel_values":  # images / feature maps: batch only
            return {0: Dim.AUTO}
        return {i: Dim.AUTO for i in range(min(value.dim(), 2))}

    return (tuple(spec("", a) for a in args), {k: spec(k, v) for k, v in kwargs.items()})


def _specialised(ep: Any) -> tuple[str, ...]:
    """A note naming the batch / sequence dims that dynamic_shapes_for asked Dim.AUTO for but
    torch.export fixed: example sizes 0 and 1 (torch.export's 0/1 specialisation: a larger
    example fixes it), other sizes (the model specialises them, e.g. a loop unrolled over time
    steps)."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    small: list[str] = []
    fixed: list[str] = []
    user = set(ep.graph_signature.user_inputs)
    for node in ep.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" and node.name in user else None
        if not isinstance(val, torch.Tensor) or val.dim() == 0:
            continue
        dims = (0,) if val.dim() >= 4 or node.name == "pixel_values" else range(min(val.dim(), 2))
        for d in dims:
            if is_concrete_int(val.shape[d]):  # a SymInt that export specialised too
                size = int(val.shape[d])
                (small if size in (0, 1) else fixed).append(f"{node.name!r} dim {d} = {size}")
    notes = []
    if small:
        notes.append(f"dynamic=True, but torch.export specialised {', '.join(small)}: it fixes "
                     "every dynamic size whose example is 0 or 1 (0/1 specialisation), so inputs "
                     "must keep them; convert with an example of batch size and length ≥ 2 "
                     "(e.g. two sequences of a few tokens) to make them dynamic")
    if fixed:
        notes.append(f"dynamic=True, but torch.export specialised {', '.join(fixed)} (the model "
                     "fixes these sizes): inputs must keep them")
    return tuple(notes)


def capture(
    model: nn.Module, example_inputs: Any = None, *, method: str = "auto", check: bool = True,
    dynamic: bool = False,
) -> Captured:
    """Capture `model` called as model(*args, **kwargs) on `example_inputs`.

    method: "auto" (torch.export, then symbolic_trace for plain modules), "export" or "fx".
    dynamic: export batch / sequence sizes as dynamic (Dim.AUTO); falls back to the example
    shapes, with a note, where the model specialises them.
    check: refuse NaN / +inf inputs before the capture, −inf in inputs the captured graph does
    not use as attention masks after it (check_finite).
    """
    if not isinstance(model, nn.Module):
        raise CaptureError(
            f"expected a torch.nn.Module (or a model path / id for hjplug.inspect); got "
            f"{type(model).__name__}."
        )
    args, kwargs = normalize_inputs(example_inputs)
    if check:
        check_finite(args, kwargs, model)
    got = _capture(model, args, kwargs, method, dynamic)
    if check:
        check_finite(args, kwargs, model, got.graph_module)
    return got


def _capture(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], method: str,
             dynamic: bool) -> Captured:
    injected: dict[str, Any] = {}
    if "use_cache" not in kwargs and _accepts(model, "use_cache"):
        injected["use_cache"] = False
    cls = type(model).__name__
    was_training = model.training
    mode_note: tuple[str, ...] = (
        f"{cls} was in training mode: captured in eval mode (dropout off, batch-norm running "
        "statistics), so outputs match the model's eval() forward",) if was_training else ()
    model.eval()
    t0 = time.perf_counter()
    try:
        export_error: BaseException | None = None
        if method in ("auto", "export"):
            try:
                with encoder_fast_path_notes(model) as fast_path:
                    ep, notes = _export(model, args, kwargs, {**kwargs, **injected}, dynamic)
                gm = ep.module()
                return Captured(gm, "torch.export", cls, args, kwargs, injected,
                                time.perf_counter() - t0, (*notes, *fast_path, *mode_note))
            except Exception as exc:
                export_error = exc
                if method == "export":
                    raise _capture_error(cls, exc, "torch.export.export(strict=False)") from exc
        try:
            gm = _symbolic_trace(model, args, kwargs)
        except Exception as exc:
            first = export_error or exc
            how = "torch.export (non-strict) and symbolic_trace"
            raise _capture_error(cls, first, how) from exc
        notes = (f"torch.export failed ({_first_line(export_error)}); used symbolic_trace",) \
            if export_error else ()
        notes = (*notes, *mode_note)
        return Captured(gm, "symbolic_trace", cls, args, kwargs, {}, time.perf_counter() - t0,
                        notes)
    finally:
        model.train(was_training)


def _export(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
            call_kwargs: dict[str, Any], dynamic: bool) -> tuple[Any, tuple[str, ...]]:
    """torch.export.export (non-strict): with dynamic batch / sequence sizes first when
    `dynamic`, the example shapes otherwise or as fallback. Returns (program, notes)."""
    notes: tuple[str, ...] = ()
    if dynamic:
        dyn_args, dyn_kwargs = dynamic_shapes_for(args, call_kwargs)
        try:
            if args and kwargs:
                raise ValueError("mixed positional and keyword example inputs")
            with _quiet_torch_logs():
                ep = torch.export.export(model, args, call_kwargs, strict=False,
                                         dynamic_shapes=dyn_args if args else dyn_kwargs)
            return ep, _specialised(ep)
        except Exception as exc:
            notes = (f"dynamic shapes failed ({_first_line(exc)}); "
                     "captured with the example shapes",)
    with _quiet_torch_logs():
        ep = torch.export.export(model, args, call_kwargs, strict=False)
    return ep, notes


def _capture_error(cls: str, exc: BaseException, how: str) -> CaptureError:
    where = _failing_module(exc)
    at = f" in {where}" if where else ""
    op = re.search(r"(aten\.[\w.]+|torch\.ops\.[\w.]+)", str(exc))
    op_text = f" (op {op.group(1)})" if op else ""
    return CaptureError(
        f"could not capture {cls} with {how}{at}{op_text}: {type(exc).__name__}: "
        f"{_first_line(exc)}. Try: pass example inputs exactly as the model's forward takes them "
        "(a dict of keyword tensors), use_cache=False, attn_implementation='sdpa' or 'eager', "
        "or remove data-dependent Python control flow from that module."
    )


_INLINE = (nn.Softplus, nn.Sigmoid, nn.Tanh, nn.ReLU, nn.GELU, nn.SiLU, nn.Softmax,
           nn.LogSoftmax, nn.Linear, nn.Identity, nn.Dropout)


class _StackTracer(fx.Tracer):
    """symbolic_trace that records `nn_module_stack` like torch.export and inlines activations."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not isinstance(m, _INLINE) and super().is_leaf_module(m, qualname)

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):  # type: ignore[no-untyped-def]
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta["nn_module_stack"] = dict(getattr(self, "module_stack", {}))
        return node


def _symbolic_trace(model: nn.Module, args: tuple, kwargs: dict) -> fx.GraphModule:
    """Trace, then annotate shapes (ShapeProp) as `meta['val']` (meta tensors)."""
    from torch.fx.passes.shape_prop import ShapeProp

    tracer = _StackTracer()
    graph = tracer.trace(model)
    gm = fx.GraphModule(model, graph, type(model).__name__)
    if kwargs:
        raise CaptureError("symbolic_trace capture takes positional example inputs only")
    with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints its own traceback
        ShapeProp(gm).propagate(*args)
    for node in gm.graph.nodes:
        tm = node.meta.get("tensor_meta")
        if tm is not None and hasattr(tm, "shape"):
            node.meta["val"] = torch.empty(tm.shape, dtype=tm.dtype, device="meta")
    return gm
