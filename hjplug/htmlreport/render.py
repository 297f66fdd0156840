"""Render a ReportData as one self-contained HTML file, or Markdown with PNGs beside it.

Writes are atomic: a temporary file in the target directory, then os.replace.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from pathlib import Path

from hjplug.errors import HJPlugError
from hjplug.file_mode import match_plain_write, writable_error
from hjplug.htmlreport.collect import ReportData, eps_star
from hjplug.htmlreport.figures import FIGURES

__all__ = ["ReportWriteError", "check_writable", "render_html", "render_markdown",
           "write_atomic"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;width:100%}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
code{font-size:.95em}.muted{color:#666}.err{background:#fff0f0;border:1px solid #e99;
padding:.5em 1em}.err li{font-family:monospace;font-size:.85em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
"""


class ReportWriteError(HJPlugError):
    """The report's output path cannot be written."""


def check_writable(path: Path) -> None:
    """Raise ReportWriteError unless `path`'s directory exists and accepts a new file."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ReportWriteError(f"{path}: is a directory; give a file name such as report.html.")
    if not parent.is_dir():
        raise ReportWriteError(f"{path}: the directory {parent} does not exist; create it or "
                               "choose another -o path.")
    exc = writable_error(parent, "hjplug-report")
    if exc is not None:
        raise ReportWriteError(f"{path}: cannot write in {parent} ({exc.strerror or exc}); "
                               "choose another -o path.") from exc


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and os.replace."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".hjplug-report-", suffix=".tmp")
    except OSError as exc:
        raise ReportWriteError(f"{path}: cannot write in {parent} ({exc.strerror or exc}).") \
            from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        match_plain_write(tmp, path)
        os.replace(tmp, path)
    except BaseException as exc:  # also Ctrl-C: no temporary file is left behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ReportWriteError(f"{path}: write failed ({exc.strerror or exc}); nothing was "
                                   "written there. Choose another -o path.") from exc
        raise


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def block_rows(d: ReportData) -> list[tuple[str, ...]]:
    """(path, kind, Hamiltonian, ε, time step, exactness, evidence) per identified block."""
    if d.inspect is None:
        return []
    rows = d.inspect.rows()
    return [(*r, ", ".join(b.evidence)) for r, b in zip(rows, d.inspect.blocks, strict=True)]


_CAPTIONS = {
    "entropy_heatmap": "Mean normalised entropy H(π)/log k of each head's Gibbs weights on the "
                       "given text; heads labelled particle (P, < 0.33), mixed (M) or wave (W, "
                       "> 0.66).",
    "entropy_depth": "Mean (and min … max over heads) of H(π)/log k per layer: depth = HJ time, "
                     "one attention step per layer.",
    "eps_sweep": "ε → λ·ε_h for the most and least focused heads (circles: the deformed "
                 "model, whose later layers see moved inputs; open squares: the head alone at "
                 "the undeformed inputs, its own temperature response). Dotted: the model's own "
                 "ε_h. Dashed: the empirical crossover ε*½ where H/log k = 1/2. Dash-dot: the "
                 "paper's ε* = N^(−1/d) in the head's units, ε* = N^(−1/d)·|q|·R (k_j = m + R·y_j "
                 "with R the RMS radius of the N visible keys about their centroid m, so "
                 "q·k_j/ε is the heat-kernel form at unit scale with ε′ = ε/(|q|·R); d = the "
                 "participation ratio (Σσ²)²/Σσ⁴ of the key covariance; geometric mean over "
                 "queries). The ε → 0 end is the tropical limit (hard max, H → 0).",
    "folds": "Critical points of x ↦ H(π(x; ε)) along the straight path between two query "
             "states of one head, against ε; dashed lines mark basin merges (folds).",
    "attribution": "Top-k Gibbs weights π_j = ∂f/∂b_j of one query token over the keys, in "
                   "the most focused head.",
}

_SCALE_NOTE = ("ε*½: where the head's mean H/log k crosses 1/2 on the sweep (deformed model; "
               "fixed inputs: the head alone at the undeformed inputs, the reading the paper's "
               "ε* describes). Paper ε*: "
               "ε′* = N^(−1/d) for the dimensionless viscosity ε′ = ε/(|q|·R) of the heat-kernel "
               "reading q·k_j/ε = −|q̂ − y_j|²/(2ε′) + g_j + const, k_j = m + R·y_j; N visible "
               "keys, d the participation ratio of their covariance; per query, geometric mean. "
               "λ = ε/ε_h.")
_HEADERS = ("path", "kind", "Hamiltonian", "ε", "time step", "exactness", "evidence")
SCALE_HEADERS = ("head", "layer, head", "ε_h", "empirical ε*½ (λ)", "fixed-input ε*½ (λ)",
                 "paper ε* = N^(−1/d)·|q|·R (λ*)", "N", "d (participation ratio)", "mean |q|",
                 "R (RMS key radius)")


def scale_rows(d: ReportData) -> list[tuple[str, ...]]:
    """One row per swept head: its ε_h, the empirical ε*½ and the paper's ε* (hjplug.htmlreport
    .scale), each with its λ = ε/ε_h; "—" where a value is unavailable."""
    sw = d.sweep
    if sw is None or d.focused is None or d.diffuse is None:
        return []
    rows: list[tuple[str, ...]] = []
    for (li, h), label in ((d.focused, "most focused"), (d.diffuse, "least focused")):
        eps = sw.epsilon[:, li, h].tolist()
        es = eps_star(eps, sw.normalized_entropy[:, li, h].tolist())
        eh = eps[0] / sw.scales[0].item()
        ps = d.paper_scales.get((li, h))
        paper = ("—", "—", "—", "—", "—") if ps is None else (
            f"{_fmt(ps.eps_star)} ({_fmt(ps.lam_star)})", f"{ps.n_keys:.4g}", f"{ps.dim:.3g}",
            f"{ps.q_norm:.3g}", f"{ps.radius:.3g}")
        fixed = "—"
        if sw.fixed_normalized_entropy is not None:
            ef = eps_star(eps, sw.fixed_normalized_entropy[:, li, h].tolist())
            fixed = f"{_fmt(ef)} ({_fmt(ef / eh)})"
        rows.append((label, f"{li}, {h}", _fmt(eh), f"{_fmt(es)} ({_fmt(es / eh)})", fixed,
                     *paper))
    return rows


def _head_stats(d: ReportData) -> list[str]:
    """Short sentences on the sweep / fold / attribution results."""
    out = []
    if d.heads:
        reg: dict[str, int] = {}
        for h in d.heads:
            reg[h.regime] = reg.get(h.regime, 0) + 1
        out.append(f"{len(d.heads)} attention heads: "
                   + ", ".join(f"{n} {k}" for k, n in sorted(reg.items())))
    sw = d.sweep
    if sw is not None and d.focused and d.diffuse:
        out.append(f"ε-sweep of the most focused (layer {d.focused[0]} head {d.focused[1]}) and "
                   f"least focused (layer {d.diffuse[0]} head {d.diffuse[1]}) heads over λ ∈ "
                   f"{[round(x, 3) for x in sw.scales.tolist()]}; critical scales in the table "
                   "below")
        out.append(f"monotonicity of H in ε: {sw.checked} (row, step) pairs checked, "
                   f"{len(sw.violations)} violations")
    if d.fold is not None and d.fold.fold_scan is not None:
        scan = d.fold.fold_scan
        merges = ", ".join(f"{f.eps:.4g}" for f in scan.folds) or "none in this range"
        out.append(f"fold scan: {d.fold.fold_source}; basin merges at ε = {merges}")
    return out


def render_html(d: ReportData, figs: dict[str, bytes]) -> str:
    p: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                    f"<title>hjplug report — {_e(d.name)}</title>",
                    f"<style>{_CSS}</style></head><body>",
                    f"<h1>hjplug report — {_e(d.name)}</h1>",
                    f'<p class="muted">Source: {_e(d.source)}</p>']
    if d.errors:
        p.append('<div class="err" id="errors"><b>Some stages failed; the report shows what '
                 "was found.</b><ul>")
        p += [f"<li>{_e(s)}: {_e(m)}</li>" for s, m in d.errors]
        p.append("</ul></div>")
    p.append("<h2>Model summary</h2><ul>")
    if d.inspect is not None:
        p.append(f"<li>{_e(d.inspect.summary())}</li>")
    p += [f"<li>{_e(s)}</li>" for s in _head_stats(d)]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in d.seconds.items())
    p.append(f"<li class=\"muted\">stage times: {_e(timing)}</li></ul>")
    p.append("<h2>Identified blocks</h2>")
    rows = block_rows(d)
    if d.inspect is None:
        p.append("<p>Not available (the inspect stage failed).</p>")
    else:
        p.append('<table id="blocks"><thead><tr>' + "".join(f"<th>{_e(h)}</th>"
                                                          for h in _HEADERS)
                 + "</tr></thead><tbody>")
        p += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows]
        p.append("</tbody></table>")
        nm = d.inspect.near_misses
        p.append(f"<h3>Unrecognised blocks (near-misses): {len(nm)}</h3>")
        if nm:
            p.append('<table id="near-misses"><thead><tr><th>path</th><th>rule</th>'
                     "<th>node</th><th>reason</th></tr></thead><tbody>")
            p += [f"<tr><td>{_e(n.path)}</td><td>{_e(n.rule)}</td><td>{_e(n.node)}</td>"
                  f"<td>{_e(n.reason)}</td></tr>" for n in nm]
            p.append("</tbody></table>")
    srows = scale_rows(d)
    if srows:
        p.append("<h2>Critical scales of the swept heads</h2>")
        p.append('<table id="scales"><thead><tr>' + "".join(f"<th>{_e(h)}</th>"
                                                          for h in SCALE_HEADERS)
                 + "</tr></thead><tbody>")
        p += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in srows]
        p.append(f'</tbody></table><p class="muted">{_e(_SCALE_NOTE)}</p>')
    p.append("<h2>Figures</h2>")
    for key, title, _fn in FIGURES:
        p.append(f"<h3>{_e(title)}</h3>")
        if key in figs:
            b64 = base64.b64encode(figs[key]).decode("ascii")
            cap = _e(_CAPTIONS.get(key, title))
            p.append(f'<figure><img id="fig-{key}" alt="{_e(title)}" '
                     f'src="data:image/png;base64,{b64}"><figcaption>{cap}</figcaption>'
                     "</figure>")
        else:
            p.append('<p class="muted">Not available (see the errors above).</p>')
    p.append('<p class="muted">Generated by hjplug report. ε = 1/scale is the viscosity; '
             "attention weights are the Gibbs weights π of the Hopf–Cole solution.</p>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"


def _md_cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(d: ReportData, figs: dict[str, bytes], stem: str) -> str:
    """Markdown text; figures referenced as `{stem}_{key}.png` (written beside it by the caller)."""
    p = [f"# hjplug report — {d.name}", "", f"Source: {d.source}", ""]
    if d.errors:
        p += ["## Errors", "", *[f"- **{s}**: {_md_cell(m)}" for s, m in d.errors], ""]
    p += ["## Model summary", ""]
    if d.inspect is not None:
        p.append(f"- {d.inspect.summary()}")
    p += [f"- {s}" for s in _head_stats(d)]
    p += ["", "## Identified blocks", ""]
    if d.inspect is None:
        p.append("Not available (the inspect stage failed).")
    else:
        p += ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
        p += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in block_rows(d)]
        nm = d.inspect.near_misses
        p += ["", f"### Unrecognised blocks (near-misses): {len(nm)}", ""]
        if nm:
            p += ["| path | rule | node | reason |", "|---|---|---|---|"]
            p += [f"| {_md_cell(n.path)} | {_md_cell(n.rule)} | {_md_cell(n.node)} | "
                  f"{_md_cell(n.reason)} |" for n in nm]
    srows = scale_rows(d)
    if srows:
        p += ["", "## Critical scales of the swept heads", "",
              "| " + " | ".join(_md_cell(h) for h in SCALE_HEADERS) + " |",
              "|" + "---|" * len(SCALE_HEADERS)]
        p += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in srows]
        p += ["", _SCALE_NOTE]
    p += ["", "## Figures", ""]
    for key, title, _fn in FIGURES:
        p += [f"### {title}", "", _CAPTIONS.get(key, ""), ""]
        p.append(f"![{title}]({stem}_{key}.png)" if key in figs
                 else "Not available (see the errors above).")
        p.append("")
    return "\n".join(p)
