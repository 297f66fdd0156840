"""The record the whole library passes around for one identified block (`HJSpec`).

A block's HJ reading: its kind, its Hamiltonian H(p) (formula plus parameters), the viscosity ε
(scalar or one per head), the time step, and whether the reading is exact, structural or open,
with the evidence (ops / modules) it rests on. Records are frozen and round-trip through JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from hjplug.errors import InvalidArgumentError

__all__ = ["BlockKind", "Exactness", "HJSpec", "Hamiltonian"]


class BlockKind(StrEnum):
    ATTENTION = "attention"
    RESIDUAL = "residual"
    RECURRENT = "recurrent"
    SSM = "ssm"
    LSE = "lse"
    ACTIVATION = "activation"


class Exactness(StrEnum):
    EXACT = "exact"  # holds to machine precision (paper-notes §1-§3)
    STRUCTURAL = "structural"  # a modelling reading of the architecture (paper-notes §4)
    OPEN = "open"  # no exact HJ reading is known (e.g. GELU/SiLU FFNs)


def _freeze(value: Any) -> Any:
    """JSON-compatible, hashable-ish canonical form: lists become tuples, recursively."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _freeze(v) for k, v in value.items()}
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Hamiltonian:
    """A Hamiltonian H(x, p): human-readable `formula` and its named `params` (JSON values)."""

    formula: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(dict(self.params)))


@dataclass(frozen=True)
class HJSpec:
    """One identified block.

    path:        module path ("encoder.layer.3.attention") or graph node name
    kind:        attention | residual | recurrent | ssm | lse | activation
    hamiltonian: the identified H, e.g. "H(p) = pᵀ Σ p" with {"metric": "M = W_Q W_Kᵀ"}
    epsilon:     viscosity ε ≥ 0 (float; 0 = inviscid), one per head (tuple), or None if undefined
    time_step:   Δt of the HJ step (float), a description ("per-coordinate, from gates"), or None
    exactness:   exact | structural | open
    evidence:    the ops / modules the reading rests on, e.g. ("aten.softmax", "aten.matmul")
    """

    path: str
    kind: BlockKind
    hamiltonian: Hamiltonian
    epsilon: float | tuple[float, ...] | None
    time_step: float | str | None
    exactness: Exactness
    evidence: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", BlockKind(self.kind))
        object.__setattr__(self, "exactness", Exactness(self.exactness))
        object.__setattr__(self, "evidence", tuple(self.evidence))
        eps = self.epsilon
        if isinstance(eps, list | tuple):
            eps = tuple(float(e) for e in eps)
            bad = [e for e in eps if not 0 <= e < float("inf")]
        elif eps is not None:
            eps = float(eps)
            bad = [] if 0 <= eps < float("inf") else [eps]
        else:
            bad = []
        if bad:
            raise InvalidArgumentError(
                "epsilon", "finite and ≥ 0 (0 = inviscid), a tuple of such, or None",
                self.epsilon, where=f"HJSpec({self.path})",
            )
        object.__setattr__(self, "epsilon", eps)

    def to_dict(self) -> dict[str, Any]:
        d = _thaw(asdict(self))
        d["kind"], d["exactness"] = str(self.kind), str(self.exactness)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HJSpec:
        h = d["hamiltonian"]
        eps = d["epsilon"]
        return cls(
            path=d["path"],
            kind=BlockKind(d["kind"]),
            hamiltonian=Hamiltonian(h["formula"], h.get("params", {})),
            epsilon=tuple(eps) if isinstance(eps, list) else eps,
            time_step=d["time_step"],
            exactness=Exactness(d["exactness"]),
            evidence=tuple(d.get("evidence", ())),
            notes=d.get("notes", ""),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> HJSpec:
        return cls.from_dict(json.loads(text))
