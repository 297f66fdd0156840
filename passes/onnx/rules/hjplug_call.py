"""Rule `hjplug_call`: calls already in the `hjplug` domain (files hjplug wrote) are read back
from their `hjplug.*` metadata_props, so `inspect` of a rewritten file gives the same blocks."""

from __future__ import annotations

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.spec import HJSpec

NAME = "hjplug_call"


def _check(g: GraphIndex, i: int) -> OnnxMatch | NearMiss:
    meta = g.meta(i)
    name, path = g.name(i), g.block_path(i)
    text = meta.get("hjplug.spec")
    if not text:
        return NearMiss(NAME, name, path, "hjplug-domain call without 'hjplug.spec' metadata")
    try:
        spec = HJSpec.from_json(text)
    except (ValueError, KeyError, TypeError) as err:
        return NearMiss(NAME, name, path, f"unreadable 'hjplug.spec' metadata: {err}")
    source = meta.get("hjplug.source", name)
    return OnnxMatch(NAME, spec, i, (i,), source, wrap=False)


class HJPlugCallRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        return [_check(g, i) for i, n in enumerate(g.nodes)
                if n.domain == "hjplug" and i not in claimed]


RULE = HJPlugCallRule()
