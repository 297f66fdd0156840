"""Assertions shared by the ONNX-pass tests."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from hjplug.passes.onnx.parity import Parity, compare

META_KEYS = ("hjplug.kind", "hjplug.epsilon", "hjplug.hamiltonian", "hjplug.time_step",
             "hjplug.exactness", "hjplug.source")


def calls(path: Path) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.domain == "hjplug"]


def meta(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}


def check_rewritten(src: Path, dst: Path, feeds=None, atol: float = 1e-6) -> Parity:
    """Full onnx.checker passes on dst, every hjplug call is a local function with its metadata,
    and ORT gives the same outputs for src and dst (≤ atol)."""
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    local = {(f.domain, f.name, f.overload) for f in model.functions}
    for n in model.graph.node:
        if n.domain == "hjplug":
            assert ("hjplug", n.op_type, n.overload) in local
            m = meta(n)
            assert all(k in m for k in META_KEYS), m
            json.loads(m["hjplug.epsilon"])
    parity = compare(src, dst, feeds)
    assert parity.max_abs <= atol, parity
    return parity
