"""Records of the ONNX export: what was written (`ExportResult`), the statistics outputs it carries
(`StatOutput`), an ONNX Runtime vs PyTorch comparison (`OrtParity`), and `ExportError`.

No heavy imports here (the report record is only named for type checkers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hjplug.errors import HJPlugError

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.report import InspectReport

__all__ = ["ExportError", "ExportResult", "OrtParity", "OrtRunError", "StatOutput"]


class ExportError(HJPlugError, RuntimeError):
    """A model hjplug could not export to ONNX: names the model class, the failing op (when the
    exporter says) and what to try."""


class OrtRunError(HJPlugError, RuntimeError):
    """ONNX Runtime could not load or run an exported file: names the file, the failing node
    (when ONNX Runtime says), ONNX Runtime's own message and what to try."""


@dataclass(frozen=True)
class StatOutput:
    """One statistics graph output (`stats=True`): `name` in the ONNX graph, the attention block
    (`path`, as in the report) and which statistic: "log_partition" (logsumexp over the
    unmasked keys of the scaled+masked scores) or "entropy" (H(π) over the unmasked keys), each
    of shape scores.shape[:-1], i.e. (batch, heads, query) for the usual (b, h, q, k) scores."""

    name: str
    path: str
    stat: str


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote.

    path:          the analysed .onnx file
    report:        the ONNX pass's report of it (also stored in the file as `hjplug.report`)
    exporter:      "dynamo" (torch.onnx.export(dynamo=True)) or "legacy" (TorchScript exporter)
    opset:         default-domain opset of the file
    inputs:        graph input names, in order
    outputs:       the model's own graph outputs, in order (statistics outputs excluded)
    dynamic_axes:  input name → {axis: symbolic name} of the axes left dynamic
    stats:         the statistics outputs (empty unless stats=True)
    notes:         what else a user should know (fallbacks taken, axes fixed, blocks skipped)
    seconds:       wall time of the whole export
    """

    path: Path
    report: InspectReport
    exporter: str
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    stats: tuple[StatOutput, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.report.kinds().items()) or "no blocks"
        extra = f", {len(self.stats)} statistics outputs" if self.stats else ""
        return (f"{self.path}: {len(self.report.blocks)} hjplug blocks ({kinds}){extra}; "
                f"{self.exporter} exporter, opset {self.opset}, {self.seconds:.1f} s")


@dataclass(frozen=True)
class OrtParity:
    """ONNX Runtime against PyTorch on the same inputs: per output, max |ort − torch| and that
    divided by max |torch| (the output's scale); `provider` is the execution provider used."""

    provider: str
    max_abs: dict[str, float]
    max_rel: dict[str, float]

    @property
    def worst_rel(self) -> float:
        return max(self.max_rel.values(), default=0.0)

    def ok(self, rtol: float = 1e-4) -> bool:
        return self.worst_rel <= rtol
