"""`export_onnx(model, path)`: PyTorch model → analysed ONNX file that ONNX Runtime runs.

    torch.onnx.export (dynamo; TorchScript fallback)  →  plain file in a temporary directory
    hjplug.passes.onnx.rewrite                         →  hjplug-domain function calls + metadata
    stats=True                                         →  log-partition / entropy graph outputs
    onnx.checker (full) → save_atomic(path)            →  nothing half-written at `path`
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from hjplug.integrations.onnxruntime.records import ExportError, ExportResult

__all__ = ["export_onnx"]


def _float_dtype(model: nn.Module) -> str:
    for p in model.parameters():
        if p.is_floating_point():
            return str(p.dtype).removeprefix("torch.")
    return "float32"


def export_onnx(model: nn.Module, path: str | os.PathLike[str], example_inputs: Any = None, *,
                stats: bool = False, opset: int | None = None,
                dynamic: bool | Mapping[str, Mapping[int, str]] = True) -> ExportResult:
    """Export `model` to the ONNX file `path`, every recognised block an `hjplug`-domain call.

    example_inputs: a tensor, a tuple of tensors or a dict of keyword tensors; None for a
        Hugging Face model (synthesised from its config: batch 2 × sequence 16).
    stats: add graph outputs `hjplug.stats/<block>/log_partition` and `…/entropy` per attention
        step (per head and query; masked keys removed), computed inside the functions.
    opset: default-domain opset (None: the exporter's default).
    dynamic: True: batch and sequence axes stay symbolic ("batch", "sequence"), guessed per
        input (token inputs (b, t), pixels (b, …), other rank-2/3 tensors (b, t, …)); False:
        all static; or explicit {input name: {axis: symbolic name}}. Axes the graph cannot
        vary (e.g. Mamba's unrolled scan) are fixed again and listed in the result's notes.

    The model itself is not modified. Raises ExportError (model class, failing op, what to try)
    or OnnxFileError (output path unusable); nothing is written at `path` on failure.
    """
    import onnx

    from hjplug._version import __version__
    from hjplug.integrations.onnxruntime.inputs import prepare
    from hjplug.integrations.onnxruntime.stats import add_stats, removal_threshold
    from hjplug.integrations.onnxruntime.torch_export import export_plain
    from hjplug.passes.onnx import OnnxFileError, rewrite, save_atomic
    from hjplug.passes.onnx.io import check_destination

    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ExportError(f"export_onnx expects a torch.nn.Module; got {type(model).__name__} "
                          "(load a path with hjplug.api.load_model first).")
    if opset is not None:
        from hjplug.passes.onnx.opsets import export_opset_problem

        if (problem := export_opset_problem(opset)) is not None:
            raise ExportError(problem)
    dst = check_destination(path)  # before any work: clear error for a bad output path
    was_training = model.training
    model.eval()
    try:
        prep = prepare(model, example_inputs, dynamic)
        with tempfile.TemporaryDirectory(prefix="hjplug-export-") as tmp:
            plain, analysed = Path(tmp) / "plain.onnx", Path(tmp) / "analysed.onnx"
            exported = export_plain(prep, plain, opset)
            report = rewrite(plain, analysed, check=False)
            m = onnx.load(str(analysed))
    finally:
        model.train(was_training)
    notes = [*prep.notes, *exported.notes]
    stat_outputs: tuple = ()
    if stats:
        stat_outputs, more = add_stats(m, removal_threshold(_float_dtype(model)))
        notes += more
    cls = type(model).__name__
    report = replace(
        report, model=cls, source=f"{cls} via torch.onnx.export ({exported.exporter}), "
        f"opset {exported.opset}", capture=f"hjplug.export_onnx ({exported.exporter})",
        seconds=time.perf_counter() - t0,
        notes=tuple(n for n in (*report.notes, *notes) if not n.startswith("written to")))
    _set_metadata(m, {"hjplug.version": __version__,
                      "hjplug.report": report.to_json(indent=None)})
    if m.ByteSize() < 2**31 - 1:
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as err:
            raise OnnxFileError(
                f"{dst}: the analysed export of {cls} failed onnx.checker ({err}); nothing was "
                "written. This is an hjplug bug: please report it with the model's config."
            ) from err
    save_atomic(m, dst, external=m.ByteSize() >= 2**31 - 1)
    stat_names = {s.name for s in stat_outputs}
    return ExportResult(
        path=dst, report=report, exporter=exported.exporter, opset=exported.opset,
        inputs=tuple(v.name for v in m.graph.input),
        outputs=tuple(v.name for v in m.graph.output if v.name not in stat_names),
        dynamic_axes=exported.dynamic_axes, stats=stat_outputs, notes=tuple(notes),
        seconds=time.perf_counter() - t0)


def _set_metadata(model: Any, values: dict[str, str]) -> None:
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in values.items():
        model.metadata_props.add(key=k, value=v)
