"""`hjplug report`: --format md -o r.html wrote Markdown into a .html file, and --format md alone
wrote Markdown into report.html. Now -o's suffix and --format must agree (refused before any
work otherwise, exit 2); either one alone decides the other."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hjplug.cli import main
from hjplug.cli.report import output_and_format


@pytest.mark.parametrize(("argv", "found", "fix"), [
    (["--format", "md", "-o", "r.html"], "r.html", "r.md"),
    (["--format", "html", "-o", "r.md"], "r.md", "r.html"),
    (["-o", "r.txt"], "r.txt", "r.html"),
    (["--format", "md", "-o", "r"], "r", "r.md"),
])
def test_contradicting_or_unknown_suffix_is_refused(argv, found, fix, tmp_path, capsys,
                                                    monkeypatch, refuse_load) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert found in lines[0] and f"-o {fix}" in lines[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("output", "fmt", "expected"), [
    (None, None, ("report.html", "html")),
    (None, "md", ("report.md", "md")),
    (None, "html", ("report.html", "html")),
    ("r.md", None, ("r.md", "md")),
    ("r.MD", "md", ("r.MD", "md")),
    ("r.htm", None, ("r.htm", "html")),
    ("out/r.html", "html", ("out/r.html", "html")),
])
def test_suffix_and_format_agree(output, fmt, expected) -> None:
    args = argparse.Namespace(output=output, format=fmt)
    path, chosen = output_and_format(args)
    assert (path, chosen) == (Path(expected[0]), expected[1])
