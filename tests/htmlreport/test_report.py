"""`hjplug report`: self-contained HTML / Markdown, one table row per block, real PNG figures,
no external URLs, clear errors for bad output paths, partial reports for unanalysable models."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

from hjplug.api import Loaded, load_model
from hjplug.cli import main
from hjplug.htmlreport import FIGURE_KEYS, collect, write_report


class _Doc(HTMLParser):
    """Rows of table#blocks, <img> sources, and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.table: str | None = None
        self.rows: dict[str, int] = {}
        self.imgs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id") or ""
        if tag == "tr" and self.table is not None and "tbody" in self.stack:
            self.rows[self.table] = self.rows.get(self.table, 0) + 1
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass
        if tag == "table":
            self.table = None


def _parse(text: str) -> _Doc:
    doc = _Doc()
    doc.feed(text)
    doc.close()
    return doc


def _png_nonblank(data: bytes) -> None:
    import matplotlib.image as mpimg

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(io.BytesIO(data), format="png")
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.02  # not a single flat colour


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """The bundled MiniLM, collected once; written as HTML and as Markdown."""
    loaded = load_model(None)
    data = collect(loaded)
    d = tmp_path_factory.mktemp("report")
    html_files = write_report(data, d / "report.html")
    md_files = write_report(data, d / "report.md", "md")
    return data, html_files, md_files


def test_html_structure(minilm) -> None:
    data, (html_path,), _ = minilm
    assert not data.errors, data.errors
    text = html_path.read_text(encoding="utf-8")
    doc = _parse(text)
    assert doc.rows["blocks"] == len(data.inspect.blocks) > 0
    assert doc.rows.get("near-misses", 0) == len(data.inspect.near_misses)
    assert len(doc.imgs) == len(FIGURE_KEYS)
    for src in doc.imgs:
        assert src.startswith("data:image/png;base64,")
        _png_nonblank(base64.b64decode(src.split(",", 1)[1]))
    assert 'src="http' not in text and 'href="http' not in text and "url(http" not in text
    assert not [u for u in doc.links if re.match(r"^(https?:)?//", u)]
    assert "<script src" not in text and "<link" not in text
    for word in ("particle", "ε*", "tropical", "depth = HJ time", "N^(−1/d)·|q|·R"):
        assert word in text, word
    assert doc.rows["scales"] == 2  # most and least focused: empirical and paper ε*
    assert set(data.paper_scales) == {data.focused, data.diffuse}
    for ps in data.paper_scales.values():  # 21 tokens, ε_h = √32: the paper's ε* is defined
        assert ps.n_keys == data.tokens.__len__() and ps.eps0 == pytest.approx(32**0.5)
        assert 1 <= ps.dim <= 32 and ps.eps_star > 0
    scan = data.fold.fold_scan  # the default grid reaches the particle regime (λ = 0.03)
    assert min(scan.eps) < 0.2 * 32**0.5 and max(scan.n_minima) >= 1
    assert data.fold is not None and data.fold.fold_scan is not None
    assert data.attribution is not None and data.attribution.topk_weights.shape[-1] == 8
    assert not list(html_path.parent.glob(".hjplug-report-*"))  # no temp file left


def test_markdown_writes_pngs(minilm) -> None:
    data, _, md_files = minilm
    md = md_files[0]
    pngs = md_files[1:]
    assert len(pngs) == len(FIGURE_KEYS)
    text = md.read_text(encoding="utf-8")
    for p in pngs:
        assert p.parent == md.parent and f"]({p.name})" in text
        _png_nonblank(p.read_bytes())
    assert text.count("\n| ") >= len(data.inspect.blocks) + 1


def test_bad_output_path(tmp_path, capsys) -> None:
    assert main(["report", "-o", str(tmp_path / "missing" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1
    assert main(["report", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert main(["report", "-o", str(ro / "r.html")]) == 2
            assert "cannot write" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)


def test_cli_tiny_model_html(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "intermediate_size": 37,
                               "vocab_size": 97}))
    out = tmp_path / "tiny.html"
    assert main(["report", str(cfg), "-o", str(out), "--topk", "3"]) == 0, \
        capsys.readouterr().err
    doc = _parse(out.read_text(encoding="utf-8"))
    assert doc.rows["blocks"] > 0 and len(doc.imgs) >= 3


class _Opaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).relu()


def test_unanalysable_model_still_renders(tmp_path) -> None:
    loaded = Loaded(_Opaque(), {"x": torch.randn(2, 4)}, "opaque", "a plain nn.Module")
    data = collect(loaded)
    assert data.errors and {s for s, _ in data.errors} >= {"instrument", "sweep", "attribution"}
    (out,) = write_report(data, tmp_path / "partial.html")
    text = out.read_text(encoding="utf-8")
    doc = _parse(text)
    assert 'id="errors"' in text and "instrument" in text
    if data.inspect is not None:
        assert doc.rows.get("blocks", 0) == len(data.inspect.blocks)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="no chromium binary found")
def test_browser_renders(minilm, tmp_path) -> None:
    data, (html_path,), _ = minilm
    url = Path(html_path).resolve().as_uri()
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*base, "--window-size=1200,2400", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=90)
    assert shot.is_file(), proc.stderr[-2000:]
    _png_nonblank(shot.read_bytes())
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and
               ("Uncaught" in ln or "rror" in ln)]
    assert not console, console
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert _parse(dom.stdout).rows["blocks"] == len(data.inspect.blocks), dom.stderr[-2000:]


def test_cli_partial_report_exits_1(tmp_path, capsys, monkeypatch) -> None:
    import hjplug.api

    monkeypatch.setattr(hjplug.api, "load_model", lambda source=None, text=None: Loaded(
        _Opaque(), {"x": torch.randn(2, 4)}, "opaque", "a plain nn.Module"))
    out = tmp_path / "partial.md"
    assert main(["report", "-o", str(out), "--format", "md"]) == 1
    err = capsys.readouterr().err
    assert "instrument failed" in err and "failed stage(s) shown in it" in err
    assert "## Errors" in out.read_text(encoding="utf-8")
