"""`inspect_onnx(path)` and `rewrite(src, dst)`: the ONNX pass on any .onnx file."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import onnx

from hjplug._version import __version__
from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.io import (
    OnnxFileError,
    check_data_destination,
    check_destination,
    check_not_input,
    check_runnable_opset,
    load,
    save_atomic,
)
from hjplug.passes.onnx.records import OnnxRecognition, OnnxRule
from hjplug.passes.onnx.runner import recognize
from hjplug.passes.onnx.wrap import wrap
from hjplug.report import InspectReport

__all__ = ["analyse", "inline_foreign", "inspect_onnx", "rewrite"]


def _with_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with inferred value_info (node order unchanged); the model itself if that fails."""
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # shapes are a help, not a requirement
        return model


def inline_foreign(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """`model` with another exporter's model-local functions inlined (e.g. the TorchScript
    exporter's `export_modules_as_functions`), so the rules see the ops inside them; `hjplug`
    functions stay calls (the `hjplug_call` rule reads them back). Returns the model (itself
    when there is nothing to inline) and a note for the report."""
    import onnx.inliner

    from hjplug.passes.onnx.wrap import DOMAIN

    foreign = sorted({(f.domain, f.name) for f in model.functions if f.domain != DOMAIN})
    if not foreign:
        return model, []
    n_calls = Counter((n.domain, n.op_type) for n in model.graph.node)
    names = ", ".join(f"{d}.{n} ({n_calls[(d, n)]} call{'' if n_calls[(d, n)] == 1 else 's'})"
                      for d, n in foreign)
    own = sorted({(f.domain, f.name) for f in model.functions if f.domain == DOMAIN})
    try:
        out = onnx.inliner.inline_selected_functions(model, own, exclude=True)
    except Exception as err:  # the blocks inside stay unscanned: say so, never silently
        return model, [f"model-local functions {names} could not be inlined ({err}); the ops "
                       "inside them are not scanned: inline them (onnx.inliner."
                       "inline_local_functions) or re-export without functions"]
    return out, [f"inlined model-local functions {names} so that the ops inside them are "
                 "scanned"]


def analyse(model: onnx.ModelProto,
            rules: Sequence[OnnxRule] | None = None) -> tuple[GraphIndex, OnnxRecognition]:
    """Index `model` (with inferred shapes) and run the rules over it."""
    index = GraphIndex(_with_shapes(model))
    return index, recognize(index, rules)


def _report(path: Path, capture: str, rec: OnnxRecognition, seconds: float,
            notes: list[str], extra_misses: Sequence = ()) -> InspectReport:
    return InspectReport(
        model=path.name, source=str(path), capture=capture,
        blocks=tuple(m.spec for m in rec.matches),
        near_misses=(*rec.near_misses, *extra_misses), counts=dict(rec.counts),
        seconds=seconds, notes=tuple(notes),
    )


def _notes(index: GraphIndex, opset: int) -> list[str]:
    notes = [f"opset {opset}, IR {index.model.ir_version}, {len(index.nodes)} nodes"]
    if any(n.op_type in ("If", "Loop", "Scan") for n in index.nodes):
        notes.append("subgraphs of If/Loop/Scan are not scanned")
    return notes


def inspect_onnx(path: str | os.PathLike,
                 rules: Sequence[OnnxRule] | None = None) -> InspectReport:
    """Recognise the HJ blocks of the ONNX file at `path` (any exporter's, or one hjplug wrote:
    its `hjplug` calls are read back from their metadata). Nothing is written."""
    t0 = time.perf_counter()
    loaded = load(path)
    model, inlined = inline_foreign(loaded.model)
    index, rec = analyse(model, rules)
    return _report(loaded.path, "onnx", rec, time.perf_counter() - t0,
                   [*_notes(index, loaded.opset), *inlined])


def rewrite(src: str | os.PathLike, dst: str | os.PathLike,
            rules: Sequence[OnnxRule] | None = None, *, check: bool = True) -> InspectReport:
    """Rewrite the ONNX file `src` into `dst`: each recognised block becomes a call to a
    model-local function in the `hjplug` domain (body = the original ops, so ONNX Runtime runs
    it unchanged) carrying `hjplug.*` metadata; the model carries the hjplug version and this
    report as JSON. With `check`, `onnx.checker` (full check) must pass before anything is
    written; `dst` is written atomically (temporary file + rename). `dst` must not be `src`
    (the input and its external data are never modified), and an existing '<dst>.data' is
    replaced only when it is the previous `dst`'s own. Returns the report."""
    t0 = time.perf_counter()
    out_path = check_destination(dst, src)
    loaded = load(src)
    check_not_input(out_path, loaded.path, loaded.data_files)
    check_runnable_opset(loaded)
    if loaded.external:
        check_data_destination(out_path, loaded.data_files)
    model, inlined = inline_foreign(loaded.model)
    index, rec = analyse(model, rules)
    done = wrap(model, index, rec.matches)
    notes = [*_notes(index, loaded.opset), *inlined]
    notes.append("functions: " + (", ".join(f"hjplug.{k} ({v} bod{'y' if v == 1 else 'ies'})"
                                            for k, v in done.functions.items()) or "none"))
    notes.append(f"written to {out_path}")
    report = _report(loaded.path, "onnx rewrite", rec, time.perf_counter() - t0, notes,
                     done.skipped)
    model = done.model
    _set_metadata(model, {"hjplug.version": __version__,
                          "hjplug.report": report.to_json(indent=None)})
    too_big = model.ByteSize() >= 2**31 - 1
    if check:
        try:
            if not too_big:
                onnx.checker.check_model(model, full_check=True)
        except Exception as err:
            raise OnnxFileError(
                f"{out_path}: the rewritten model of {loaded.path} failed onnx.checker ({err}); "
                "nothing was written. This is an hjplug bug: please report it with the input "
                "file, or pass check=False to write it anyway.") from err
    save_atomic(model, out_path, external=loaded.external or too_big)
    return report


def _set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in values.items():
        model.metadata_props.add(key=k, value=v)
