"""Assertions shared by the ONNX Runtime export tests."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from hjplug.report import InspectReport

META_KEYS = ("hjplug.kind", "hjplug.epsilon", "hjplug.hamiltonian", "hjplug.time_step",
             "hjplug.exactness", "hjplug.source")


def check_file(path: Path) -> tuple[onnx.ModelProto, InspectReport]:
    """Full onnx.checker passes; every hjplug call is a model-local function carrying its
    metadata; the model carries hjplug.version and the report JSON (returned)."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    local = {(f.domain, f.name, f.overload) for f in model.functions}
    calls = [n for n in model.graph.node if n.domain == "hjplug"]
    assert calls, "no hjplug call in the file"
    for n in calls:
        assert ("hjplug", n.op_type, n.overload) in local, n.op_type
        meta = {p.key: p.value for p in n.metadata_props}
        assert all(k in meta for k in META_KEYS), meta
        json.loads(meta["hjplug.epsilon"])
    props = {p.key: p.value for p in model.metadata_props}
    assert props["hjplug.version"]
    report = InspectReport.from_json(props["hjplug.report"])
    return model, report
