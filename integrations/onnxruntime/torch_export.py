"""PyTorch → plain ONNX file: `torch.onnx.export(dynamo=True)`, the TorchScript exporter (with
eager attention) as fallback, then tidy-ups the ONNX pass relies on: the wrapper's `m` prefix
leaves the module paths, and dynamic axes get the names batch / sequence.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from hjplug.integrations.onnxruntime.inputs import Prepared
from hjplug.integrations.onnxruntime.records import ExportError

__all__ = ["LEGACY_OPSET", "Exported", "export_plain", "failing_op"]

LEGACY_OPSET = 17  # default opset of the TorchScript fallback
_SCOPES = "pkg.torch.onnx.name_scopes"
_CLASSES = "pkg.torch.onnx.class_hierarchy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MASKS = ("attention_mask", "decoder_attention_mask", "pixel_mask")  # 0/1 padding masks
_OP = re.compile(r"(aten::\w+|aten\.\w+(?:\.\w+)?|torch\.ops\.[\w.]+|prim::\w+|onnx::\w+)")


@dataclass(frozen=True)
class Exported:
    """A plain export on disk: which exporter wrote it, its opset, axes left dynamic, notes."""

    path: Path
    exporter: str
    opset: int
    dynamic_axes: dict[str, dict[int, str]]
    notes: tuple[str, ...]


def failing_op(err: BaseException) -> str | None:
    """The first op an exporter error names (aten::diff, aten.xxx.default, …), if any."""
    text = "".join(f"{type(e).__name__}: {e}\n" for e in _chain(err))
    hits = [h for h in _OP.findall(text) if not h.startswith("torch.ops.higher_order")]
    return hits[0] if hits else None


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _first_line(err: BaseException, op: str | None = None) -> str:
    """The most telling line of an exporter error: one naming `op`, else the first."""
    text = _ANSI.sub("", "\n".join(str(e) for e in _chain(err)))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not
             ln.strip().startswith(("#", "%", "graph("))]
    named = [ln for ln in lines if op and op in ln and len(ln) < 400]
    return (named or lines or [type(err).__name__])[0][:240]


# logs one warning per torchvision op ("torchvision is not installed. Skipping …") on every export
_REGISTRY_LOG = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Raise the logger `name` to ERROR for the duration; its level is restored after."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _dynamo(prep: Prepared, path: Path, opset: int | None) -> None:
    from torch.export import Dim

    dyn: dict[str, Any] | tuple[Any, ...] | None = None
    if prep.axes:
        spec = {n: {a: Dim.AUTO for a in ax} for n, ax in prep.axes.items()}
        if prep.kwargs:
            dyn = {n: spec.get(n) for n in prep.kwargs}
        else:
            dyn = tuple(spec.get(n) or None for n in prep.input_names)
    with torch.no_grad(), warnings.catch_warnings(), _quiet(_REGISTRY_LOG):
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            prep.module, prep.args, kwargs=prep.kwargs or None, dynamo=True,
            opset_version=opset, dynamic_shapes=dyn, input_names=list(prep.input_names),
            output_names=list(prep.output_names), verbose=False)
    assert prog is not None
    prog.save(str(path))


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[bool]:
    """Hugging Face models switched to eager attention inside the block, restored exactly after
    (yields whether a switch happened)."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = config is not None and before not in (None, "eager") and hasattr(
        model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")  # type: ignore[operator]
    try:
        yield switch
    finally:
        if switch:
            model.set_attn_implementation(before)  # type: ignore[operator]


def _legacy(prep: Prepared, path: Path, opset: int | None) -> bool:
    module, args = prep.legacy_module()
    axes = {n: {a: role for a, role in ax.items()} for n, ax in prep.axes.items()}
    with eager_attention(prep.model) as switched, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False,
                          opset_version=opset or LEGACY_OPSET,
                          input_names=list(prep.input_names),
                          output_names=list(prep.output_names), dynamic_axes=axes or None,
                          do_constant_folding=True)
    return switched


def export_plain(prep: Prepared, path: Path, opset: int | None) -> Exported:
    """Export `prep` to `path` (dynamo, else TorchScript); raise ExportError if both fail.
    Dynamic axes are probed in ONNX Runtime (one size larger each); an axis the graph cannot
    vary (e.g. a scan unrolled over the sequence) is exported again as fixed, and noted."""
    first = _export_once(prep, path, opset)
    broken = _probe(path, prep, first.dynamic_axes)
    if not broken:
        return first
    fixed = replace(prep, axes={n: {a: r for a, r in ax.items() if r not in broken}
                                for n, ax in prep.axes.items()})
    again = _export_once(fixed, path, opset)
    sizes = {r: prep.feeds()[n].shape[a] for n, ax in prep.axes.items()
             for a, r in ax.items() if r in broken}
    notes = [*again.notes, *(f"{r} axis fixed at {sizes[r]}: the exported graph does not run "
                             f"at other {r} lengths (e.g. a scan unrolled per step)"
                             for r in sorted(broken))]
    return replace(again, notes=tuple(notes))


def _torch_outputs(prep: Prepared, feeds: dict) -> list:
    """The exported module's outputs on `feeds` (numpy, by input name), flattened."""
    tensors = [torch.from_numpy(feeds[n]) for n in prep.input_names]
    k = len(prep.args)
    with torch.no_grad():
        out = prep.module(*tensors[:k], **dict(zip(list(prep.kwargs), tensors[k:],
                                                   strict=True)))
    return [x.float().numpy() for x in torch.utils._pytree.tree_leaves(out)
            if isinstance(x, torch.Tensor)]


def _probe(path: Path, prep: Prepared, axes: dict[str, dict[int, str]]) -> set[str]:
    """Roles (batch, sequence, …) whose axes cannot grow by one: ONNX Runtime fails, or its
    outputs leave PyTorch's at that size (≤ 1e-3 of the output scale is kept)."""
    import numpy as np
    import onnxruntime as ort  # type: ignore[import-untyped]

    if not axes:
        return set()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    sess = ort.InferenceSession(str(path), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    feeds = {k: v.detach().cpu().numpy() for k, v in prep.feeds().items()}
    for k, v in feeds.items():  # padding leaves query rows with no key: their outputs differ
        if k in _MASKS and not np.issubdtype(v.dtype, np.floating):  # between ORT and PyTorch
            feeds[k] = np.ones_like(v)
    wanted = {i.name for i in sess.get_inputs()}
    try:
        base = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
        compare = _close(base, _torch_outputs(prep, feeds))
    except Exception:  # not runnable even at the example's sizes: nothing to learn here
        return set()
    broken = set()
    for role in sorted({r for ax in axes.values() for r in ax.values()}):
        probe = dict(feeds)
        for name, ax in axes.items():
            for a, r in ax.items():
                if r == role:
                    x = probe[name]
                    probe[name] = np.concatenate([x, np.take(x, [-1], axis=a)], axis=a)
        try:
            got = sess.run(None, {k: v for k, v in probe.items() if k in wanted})
            ref = _torch_outputs(prep, probe)
        except Exception:
            broken.add(role)
            continue
        # values are compared only where they agree at the example's sizes (else: shapes)
        if not _close(got, ref, values=compare):
            broken.add(role)
    return broken


def _close(got: list, ref: list, values: bool = True) -> bool:
    """Same shapes and (with `values`) ≤ 1e-3 of the output scale apart."""
    import numpy as np

    for g, r in zip(got, ref, strict=False):
        scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
        if g.shape != r.shape or (values and r.size
                                  and not np.nanmax(np.abs(g - r)) <= 1e-3 * scale):
            return False
    return True


def _export_once(prep: Prepared, path: Path, opset: int | None) -> Exported:
    cls = type(prep.model).__name__
    notes: list[str] = []
    kept: Path | None = None  # a valid dynamo export at another opset than the one asked for
    try:
        _dynamo(prep, path, opset)
        _check_dynamo(path, opset)
        exporter = "dynamo"
    except Exception as first:
        kept = first.kept if isinstance(first, _OtherOpset) else None
        op = failing_op(first)
        notes.append(f"torch.onnx.export(dynamo=True) failed ({op or _first_line(first)}); "
                     "used the TorchScript exporter")
        try:
            if _legacy(prep, path, opset):
                notes.append("attention exported in eager form (TorchScript exporter)")
            exporter = "legacy"
        except Exception as second:
            if kept is not None:  # keep the valid dynamo file: say the opset was not honoured
                kept.replace(path)
                notes[-1] = (f"requested opset {opset}: torch.onnx.export(dynamo=True) wrote "
                             f"opset {_opset(onnx.load(str(path)))} and the TorchScript exporter "
                             f"failed ({failing_op(second) or _first_line(second)}); kept the "
                             "dynamo export")
                exporter = "dynamo"
            else:
                op2 = failing_op(second)
                raise ExportError(
                    f"cannot export {cls} to ONNX. torch.onnx.export(dynamo=True) failed"
                    f"{f' at {op}' if op else ''}: {_first_line(first, op)}; the TorchScript "
                    f"exporter failed{f' at {op2}' if op2 else ''}: "
                    f"{_first_line(second, op2)}. Try: use_cache=False and "
                    "attn_implementation='eager' (Hugging Face), dynamic=False, another opset "
                    "(opset=17 or 18), experts_implementation='batched_mm' for "
                    "mixture-of-experts models, or replace the failing op in the model."
                ) from second
    finally:
        if kept is not None and kept.exists():
            kept.unlink()
    model = onnx.load(str(path))
    if prep.wrapped:
        _strip_prefix(model, exporter)
    axes, more = _name_axes(model, prep)
    notes += more
    _save(model, path)
    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return Exported(path, exporter, opset_used, axes, tuple(notes))


class _OtherOpset(Exception):
    """The dynamo export is valid but at another opset than the one asked for."""

    def __init__(self, msg: str, kept: Path) -> None:
        super().__init__(msg)
        self.kept = kept


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check_dynamo(path: Path, opset: int | None) -> None:
    """The dynamo exporter's file must pass onnx.checker (at opset < 18 it can write opset-18
    attributes, e.g. Split's num_outputs) and hold the opset asked for; else raise (the
    TorchScript exporter is tried). A valid file at another opset is kept beside `path`."""
    model = onnx.load(str(path), load_external_data=False)
    try:
        onnx.checker.check_model(str(path))
    except Exception as err:
        raise ValueError(f"its opset-{_opset(model)} model is invalid: "
                         f"{str(err).splitlines()[0][:200]}") from err
    got = _opset(model)
    if opset is not None and got != opset:
        kept = path.with_name(path.name + ".dynamo")
        path.replace(kept)  # external data, if any, keeps its name beside it
        raise _OtherOpset(f"it wrote opset {got}, not the requested opset {opset}", kept)


def _save(model: onnx.ModelProto, path: Path) -> None:
    """Save, with tensors in '<name>.data' beside it when the model exceeds protobuf's 2 GiB."""
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    big = size > 2**31 - 2**26
    onnx.save_model(model, str(path), save_as_external_data=big, all_tensors_to_one_file=True,
                    location=f"{path.name}.data")


def _strip_prefix(model: onnx.ModelProto, exporter: str) -> None:
    """Remove the wrapper's 'm' from module paths: name scopes and class hierarchies (dynamo),
    '/m/…' node names (TorchScript)."""
    for node in model.graph.node:
        if exporter == "legacy":
            if node.name.startswith("/m/"):
                node.name = node.name[2:]
            continue
        for p in node.metadata_props:
            if p.key == _SCOPES:
                scopes = _literal(p.value)
                if len(scopes) >= 2 and scopes[1] == "m":
                    scopes = [scopes[0]] + [s[2:] for s in scopes[2:-1] if s.startswith("m.")] \
                        + [scopes[-1]]
                    p.value = repr(scopes)
            elif p.key == _CLASSES:
                classes = _literal(p.value)
                if classes and classes[0].endswith(".HFOutputs"):
                    p.value = repr(classes[1:])


def _literal(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _name_axes(model: onnx.ModelProto, prep: Prepared
               ) -> tuple[dict[str, dict[int, str]], list[str]]:
    """Rename the exporter's symbols (s0, s43, …) of the requested axes to batch / sequence
    everywhere in the graph; return the axes that stayed dynamic and notes on those fixed."""
    rename: dict[str, str] = {}
    axes: dict[str, dict[int, str]] = {}
    notes: list[str] = []
    graph_inputs = {v.name: v for v in model.graph.input}
    for name, roles in prep.axes.items():
        v = graph_inputs.get(name)
        if v is None:
            continue
        dims = v.type.tensor_type.shape.dim
        for axis, role in roles.items():
            if axis >= len(dims):
                continue
            d = dims[axis]
            if d.HasField("dim_param") and d.dim_param:
                rename.setdefault(d.dim_param, role)
                axes.setdefault(name, {})[axis] = role
            else:
                notes.append(f"axis {axis} ({role}) of input '{name}' is fixed at {d.dim_value}: "
                             "the exporter specialised it")
    if rename:
        for v in (*model.graph.input, *model.graph.output, *model.graph.value_info):
            if v.type.HasField("tensor_type"):
                for d in v.type.tensor_type.shape.dim:
                    if d.HasField("dim_param") and d.dim_param in rename:
                        d.dim_param = rename[d.dim_param]
    return axes, notes
