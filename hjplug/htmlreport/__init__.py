"""`hjplug report`: one self-contained HTML file (or Markdown + PNGs) on a model's HJ reading.

    data = collect(load_model(None))   # inspect, instrument, sweep, folds, attribution
    write_report(data, "report.html")  # inline CSS, figures as base64 PNG data URIs

A stage that fails is recorded in `data.errors` and shown in the report; the rest still renders.
"""

from __future__ import annotations

from pathlib import Path

from hjplug.htmlreport.collect import (
    DEFAULT_FOLD_SCALES,
    DEFAULT_SCALES,
    STAGES,
    ReportData,
    collect,
    eps_star,
)
from hjplug.htmlreport.render import (
    ReportWriteError,
    check_writable,
    render_html,
    render_markdown,
    write_atomic,
)
from hjplug.htmlreport.scale import PaperScale, paper_scale

__all__ = ["DEFAULT_FOLD_SCALES", "DEFAULT_SCALES", "FIGURE_KEYS", "STAGES", "PaperScale",
           "ReportData", "ReportWriteError", "check_writable", "collect", "eps_star",
           "paper_scale", "render_html", "render_markdown", "write_report"]


def write_report(data: ReportData, path: str | Path, fmt: str = "html") -> list[Path]:
    """Render `data` to `path` (fmt "html" or "md"); returns the files written (atomically).

    md: the PNGs go beside the .md file as `<stem>_<figure>.png`.
    """
    from hjplug.errors import InvalidArgumentError
    from hjplug.htmlreport.figures import make_figures

    if fmt not in ("html", "md"):
        raise InvalidArgumentError("format", "'html' or 'md'", fmt, where="hjplug report")
    target = Path(path)
    check_writable(target)
    figs = make_figures(data)
    if fmt == "html":
        write_atomic(target, render_html(data, figs).encode("utf-8"))
        return [target]
    written = []
    for key, png in figs.items():
        f = target.with_name(f"{target.stem}_{key}.png")
        write_atomic(f, png)
        written.append(f)
    write_atomic(target, render_markdown(data, figs, target.stem).encode("utf-8"))
    return [target, *written]


def _figure_keys() -> tuple[str, ...]:
    from hjplug.htmlreport.figures import FIGURES

    return tuple(k for k, _t, _f in FIGURES)


FIGURE_KEYS: tuple[str, ...] = _figure_keys()
