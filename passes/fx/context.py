"""What a rule sees: the graph module, its index, nodes already claimed, the model config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import fx

from hjplug.passes.fx.graph import NodeIndex

__all__ = ["RuleContext"]


@dataclass
class RuleContext:
    graph_module: fx.GraphModule
    index: NodeIndex
    config: Any = None  # the HF config when there is one
    claimed: set[fx.Node] = field(default_factory=set)
    memo: dict[Any, Any] = field(default_factory=dict)  # per-graph results rules share

    @property
    def graph(self) -> fx.Graph:
        return self.graph_module.graph
