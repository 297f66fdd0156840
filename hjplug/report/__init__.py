"""hjplug.report — report records (`InspectReport`) with table rendering and JSON."""

from hjplug.report.inspect_report import InspectReport, NearMiss

__all__ = ["InspectReport", "NearMiss"]
