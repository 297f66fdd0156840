"""ONNX Runtime against PyTorch: run the exported file and the original model on the same
inputs and compare every model output relative to its scale (max |torch|)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hjplug.integrations.onnxruntime.records import ExportResult, OrtParity

__all__ = ["check_parity", "torch_outputs"]


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
    got = run(session(result.path, provider=prov), feeds, list(ref))
    max_abs, max_rel = {}, {}
    for name, r in ref.items():
        g = np.asarray(got[name], dtype=np.float64)
        diff = float(np.max(np.abs(g - r))) if r.size else 0.0
        max_abs[name] = diff
        max_rel[name] = diff / max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-30)
    return OrtParity(prov[0], max_abs, max_rel)
