"""`inspect_onnx(path)` and `rewrite(src, dst)`: the ONNX pass on any .onnx file."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import onnx

from hjplug._version import __version__
from hjplug.passes.onnx.graph import GraphIndex, shape_skeleton
from hjplug.passes.onnx.io import (
    OnnxFileError,
    check_data_destination,
    check_destination,
    check_not_input,
    check_runnable_opset,
    full_check_error,
    load,
    save_atomic,
)
from hjplug.passes.onnx.records import OnnxRecognition, OnnxRule
from hjplug.passes.onnx.runner import recognize
from hjplug.passes.onnx.subgraphs import bodies, scan_subgraphs
from hjplug.passes.onnx.wrap import wrap
from hjplug.report import InspectReport

__all__ = ["analyse", "inline_foreign", "inspect_onnx", "rewrite"]


def _with_shapes(model: onnx.ModelProto) -> onnx.GraphProto | None:
    """`model`'s graph with inferred value_info (node order unchanged), inferred on its
    `shape_skeleton` (weights left out: on all-MiniLM-L6-v2, 87 MiB, inferring on the full
    model took 1.2 s and +306 MiB peak memory); None when inference fails."""
    try:
        done = onnx.shape_inference.infer_shapes(shape_skeleton(model, value_info=True),
                                                 strict_mode=False, data_prop=True)
    except Exception:  # shapes are a help, not a requirement
        return None
    return done.graph if len(done.graph.node) == len(model.graph.node) else None


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
    """Index `model` (with inferred shapes) and run the rules over it and, recursively, over
    the bodies of its If / Loop / Scan nodes (blocks found there are reported, not wrapped)."""
    index = GraphIndex(model, _with_shapes(model))
    rec = recognize(index, rules)
    inner = scan_subgraphs(index, rules)
    if not inner.bodies:
        return index, rec
    counts = dict(rec.counts)
    for m in inner.matches:
        counts[m.rule] = counts.get(m.rule, 0) + 1
    matches = sorted((*rec.matches, *inner.matches), key=lambda m: m.anchor)
    return index, OnnxRecognition(tuple(matches), (*rec.near_misses, *inner.near_misses),
                                  counts)


def _report(path: Path, capture: str, rec: OnnxRecognition, seconds: float,
            notes: list[str], extra_misses: Sequence = ()) -> InspectReport:
    return InspectReport(
        model=path.name, source=str(path), capture=capture,
        blocks=tuple(m.spec for m in rec.matches),
        near_misses=(*rec.near_misses, *extra_misses), counts=dict(rec.counts),
        seconds=seconds, notes=tuple(notes),
    )


def _notes(index: GraphIndex, opset: int, rec: OnnxRecognition,
           wrapped: bool | None = None) -> list[str]:
    """`wrapped`: whether blocks inside subgraph bodies were wrapped (None: nothing written)."""
    notes = [f"opset {opset}, IR {index.model.ir_version}, {len(index.nodes)} nodes"]
    owners = {i for i, n in enumerate(index.nodes) if bodies(n)}
    if owners:
        inside = sum(1 for m in rec.matches if not m.wrap and m.anchor in owners)
        ops = ", ".join(sorted({index.nodes[i].op_type for i in owners}))
        how = {None: "", True: ", wrapped in their bodies",
               False: ", reported, not wrapped (rewrite(..., wrap_subgraphs=True) wraps them)"}
        notes.append(f"subgraph bodies of {len(owners)} {ops} node(s) scanned: {inside} "
                     f"block(s) found inside{how[wrapped] if inside else ''}")
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
                   [*_notes(index, loaded.opset, rec), *inlined])


def rewrite(src: str | os.PathLike, dst: str | os.PathLike,
            rules: Sequence[OnnxRule] | None = None, *, check: bool = True,
            wrap_subgraphs: bool = True) -> InspectReport:
    """Rewrite the ONNX file `src` into `dst`: each recognised block becomes a call to a
    model-local function in the `hjplug` domain (body = the original ops, so ONNX Runtime runs
    it unchanged) carrying `hjplug.*` metadata; the model carries the hjplug version and this
    report as JSON. With `check`, `onnx.checker` (full check) must pass before anything is
    written; `dst` is written atomically (temporary file + rename). `dst` must not be `src`
    (the input and its external data are never modified), and an existing '<dst>.data' is
    replaced only when it is the previous `dst`'s own. Blocks inside If / Loop / Scan bodies
    are reported and wrapped in their body (unless `wrap_subgraphs=False`; see `wrap`). Returns
    the report."""
    t0 = time.perf_counter()
    out_path = check_destination(dst, src)
    loaded = load(src)
    check_not_input(out_path, loaded.path, loaded.data_files)
    check_runnable_opset(loaded)
    if loaded.external:
        check_data_destination(out_path, loaded.data_files)
    model, inlined = inline_foreign(loaded.model)
    index, rec = analyse(model, rules)
    done = wrap(model, index, rec.matches, subgraphs=wrap_subgraphs)
    notes = [*_notes(index, loaded.opset, rec, wrapped=wrap_subgraphs), *inlined]
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
            if (why := full_check_error(loaded.model)) is not None:
                raise OnnxFileError(
                    f"{loaded.path}: the input model fails onnx.checker's full check (shape "
                    f"inference: {why}), so its rewrite cannot be checked; nothing was written "
                    f"to {out_path}. Fix or re-export the input model, or pass check=False to "
                    "rewrite it unchecked.") from err
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
