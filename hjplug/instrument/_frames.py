"""pandas is optional: tables become DataFrames only when pandas is installed."""

from __future__ import annotations

from typing import Any

from hjplug.errors import HJPlugError

__all__ = ["frame"]


def frame(columns: dict[str, list[Any]], where: str) -> Any:
    """A pandas DataFrame of `columns`; a clear HJPlugError when pandas is missing."""
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError as exc:
        raise HJPlugError(
            f"{where}: needs pandas, which is not installed (expected an importable 'pandas'). "
            "Install it with `pip install pandas`, or use .summary().to_records() / .save(path) "
            "for plain Python / torch data.") from exc
    return pd.DataFrame(columns)
