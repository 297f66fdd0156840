"""Records of `hjplug verify`: one row per identity check, and the whole report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["VerifyReport", "VerifyRow"]


@dataclass(frozen=True)
class VerifyRow:
    """identity, the setting it was checked in, max error, tolerance, and the verdict."""

    identity: str
    setting: str
    max_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance  # NaN fails

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class VerifyReport:
    seed: int
    rows: tuple[VerifyRow, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "passed": self.passed, "rows": [r.to_dict() for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
