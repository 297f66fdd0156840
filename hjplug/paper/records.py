"""Records of `hjplug paper`: frozen dataclasses, lossless to JSON.

    Verdict         pass/fail, the criterion in words, and what was measured against it
    EntropyCheck    H(π(x; ε)) non-decreasing in ε at every fixed x (grid + ∂H/∂ε = Var_π(z)/ε³)
    ExperimentResult  one experiment: table, figure, verdict, entropy check, typed data records
    PaperReport     all experiments of one run
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

__all__ = ["EntropyCheck", "ExperimentResult", "PaperReport", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """passed: the criterion (stated in words) holds for the measured values in `detail`."""

    passed: bool
    criterion: str
    detail: str


@dataclass(frozen=True)
class EntropyCheck:
    """H(π(x; ε)) checked non-decreasing in ε at n_points fixed x over n_eps values of ε.

    violations: consecutive ε pairs where H drops by more than `tolerance`; max_drop the largest
    drop seen; min_derivative the smallest ∂H/∂ε = Var_π(z)/ε³ on the same grid (must be ≥ 0).
    """

    n_points: int
    n_eps: int
    violations: int
    max_drop: float
    min_derivative: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.violations == 0 and self.min_derivative >= 0.0

    def merged(self, other: EntropyCheck) -> EntropyCheck:
        """The check over both sets of points (worst case of each statistic)."""
        return EntropyCheck(
            n_points=self.n_points + other.n_points,
            n_eps=max(self.n_eps, other.n_eps),
            violations=self.violations + other.violations,
            max_drop=max(self.max_drop, other.max_drop),
            min_derivative=min(self.min_derivative, other.min_derivative),
            tolerance=max(self.tolerance, other.tolerance),
        )


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN → null (valid JSON)
        return None
    return value


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment: its table (columns, rows of text), figure path, verdict and checks."""

    number: int
    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    figure: str
    verdict: Verdict
    entropy_check: EntropyCheck
    seconds: float
    notes: tuple[str, ...] = ()
    data: tuple[Any, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.entropy_check.passed

    def to_dict(self) -> dict[str, Any]:
        out = {k: _plain(v) for k, v in asdict(self).items() if k != "data"}
        out["data"] = [_plain(d) for d in self.data]
        out["passed"] = self.passed
        out["entropy_check"]["passed"] = self.entropy_check.passed
        return out


@dataclass(frozen=True)
class PaperReport:
    """Every experiment of one `hjplug paper` run (seed, quick mode, output directory)."""

    seed: int
    quick: bool
    out_dir: str
    results: tuple[ExperimentResult, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed, "quick": self.quick, "out_dir": self.out_dir,
            "seconds": self.seconds, "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
