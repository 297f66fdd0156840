"""Records of the ONNX pass.

Near-misses reuse `hjplug.report.NearMiss` (the record the FX pass's report carries), so FX and
ONNX reports look alike; the reports themselves are `hjplug.report.InspectReport`. A match needs
ONNX node indices instead of FX nodes, hence `OnnxMatch` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hjplug.report import NearMiss
from hjplug.spec import BlockKind, HJSpec

__all__ = ["FUNCTION_NAMES", "NearMiss", "OnnxMatch", "OnnxRecognition", "OnnxRule"]

# the model-local function each block kind becomes (domain `hjplug`)
FUNCTION_NAMES = {
    BlockKind.ATTENTION: "HJAttentionStep",
    BlockKind.RESIDUAL: "HJResidualStep",
    BlockKind.RECURRENT: "HJRecurrentStep",
    BlockKind.SSM: "HJSSMStep",
    BlockKind.LSE: "HJLSEStep",
    BlockKind.ACTIVATION: "HJActivationStep",
}


@dataclass(frozen=True)
class OnnxMatch:
    """One recognised block: `nodes` (indices into graph.node, graph order) become one call to a
    model-local function; `anchor` is the node that names the block. `wrap=False` for blocks
    that already are hjplug calls (read back from a rewritten file), and for blocks inside a
    subgraph body: then `body` = ((control node index, attribute), …) from this graph down and
    `inner` is the block as matched in that body (its indices are the body's)."""

    rule: str
    spec: HJSpec
    anchor: int
    nodes: tuple[int, ...]
    source: str
    wrap: bool = True
    body: tuple[tuple[int, str], ...] = ()
    inner: OnnxMatch | None = None

    @property
    def function(self) -> str:
        return FUNCTION_NAMES[self.spec.kind]


@dataclass(frozen=True)
class OnnxRecognition:
    """What the rules found, in graph order; `counts[rule]` = number of matches."""

    matches: tuple[OnnxMatch, ...]
    near_misses: tuple[NearMiss, ...]
    counts: dict[str, int]


class OnnxRule(Protocol):
    """One rule: `name`, and `scan(index, claimed)` returning matches and near-misses."""

    name: str

    def scan(self, index: Any, claimed: set[int]) -> list[OnnxMatch | NearMiss]: ...
