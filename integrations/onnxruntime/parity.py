"""ONNX Runtime against PyTorch: run the exported file and the original model on the same
inputs and compare every model output relative to its scale (max |torch|)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hjplug.integrations.onnxruntime.records import ExportResult, OrtParity, OrtRunError

__all__ = ["check_parity", "ort_failure", "torch_outputs"]


def torch_outputs(model: nn.Module, example_inputs: Any, names: tuple[str, ...]
                  ) -> dict[str, np.ndarray]:
    """The model's outputs as the export names them (same wrapping as the export)."""
    from hjplug.integrations.onnxruntime.inputs import prepare

    prep = prepare(model, example_inputs, dynamic=False)
    with torch.no_grad():
        out = prep.module(*prep.args, **prep.kwargs)
    leaves = [x for x in torch.utils._pytree.tree_leaves(out) if isinstance(x, Tensor)]
    return {n: t.float().numpy() for n, t in zip(prep.output_names, leaves, strict=True)
            if n in names}


def check_parity(model: nn.Module, result: ExportResult, example_inputs: Any, *,
                 provider: list[str] | None = None) -> OrtParity:
    """Max abs / relative difference per output between ORT (on `result.path`) and PyTorch."""
    from hjplug.integrations.onnxruntime.inputs import prepare
    from hjplug.integrations.onnxruntime.sessions import providers, run, session

    prov = provider or providers()
    feeds = prepare(model, example_inputs, dynamic=False).feeds()
    ref = torch_outputs(model, example_inputs, result.outputs)
    try:
        sess = session(result.path, provider=prov)
    except OrtRunError:  # already says what is wrong with the file and what to do
        raise
    except Exception as err:  # onnxruntime's own pybind exception classes
        raise OrtRunError(ort_failure(result, err, None, prov[0])) from None
    try:
        got = run(sess, feeds, list(ref))
    except Exception as err:
        raise OrtRunError(ort_failure(result, err, feeds, prov[0])) from None
    max_abs, max_rel = {}, {}
    for name, r in ref.items():
        g = np.asarray(got[name], dtype=np.float64)
        diff = float(np.max(np.abs(g - r))) if r.size else 0.0
        max_abs[name] = diff
        max_rel[name] = diff / max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-30)
    return OrtParity(prov[0], max_abs, max_rel)


_NODE = re.compile(r"running (?P<op>[\w.]+) node\. Name:'(?P<name>[^']*)' Status Message: "
                   r"(?P<msg>.*)", re.S)


def ort_failure(result: ExportResult, err: Exception, feeds: dict[str, Any] | None,
                provider: str) -> str:
    """One message for an ONNX Runtime failure on `result.path`: what failed (loading, or
    running on which input shapes), where (the node, when ORT names it), ORT's own words, and
    what to try."""
    text = str(err).strip()
    found = _NODE.search(text)
    if found:
        where = f" in its {found['op']} node '{found['name']}'"
        text = found["msg"].strip()
    else:
        where = ""
        text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    if feeds is None:
        what = f"ONNX Runtime ({provider}) could not load {result.path}{where}"
    else:
        shapes = ", ".join(f"{k} {tuple(getattr(v, 'shape', ()))}" for k, v in feeds.items())
        what = f"ONNX Runtime ({provider}) failed running {result.path}{where} on {shapes}"
    hint = (f"The file was written by the {result.exporter} exporter at opset {result.opset}; "
            "exporter-made nodes can fail at shapes other than the export's (e.g. torch's "
            "opset-23 RotaryEmbedding at batch > 1): export again with a lower opset "
            "(export_onnx(..., opset=20), `hjplug export-onnx --opset 20`), or run at the "
            "export's input shapes.")
    return f"{what}: {text.splitlines()[0] if text else type(err).__name__}. {hint}"
