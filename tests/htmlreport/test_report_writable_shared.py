"""The report's writability check uses the shared probe `hjplug.file_mode.writable_error` (one
implementation for every file hjplug writes), not a copy of it: whatever that probe says decides
`check_writable`, and the refusal names the path, the reason and what to do."""

from __future__ import annotations

import errno
import inspect
from pathlib import Path

import pytest

import hjplug.file_mode
from hjplug.htmlreport import ReportWriteError, check_writable, render


def test_check_writable_calls_the_shared_probe(tmp_path: Path, monkeypatch) -> None:
    assert render.writable_error is hjplug.file_mode.writable_error
    assert "mkstemp" not in inspect.getsource(render.check_writable)
    asked: list[Path] = []

    def refuse(directory: Path, name: str = "") -> OSError:
        asked.append(directory)
        return OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(render, "writable_error", refuse)
    with pytest.raises(ReportWriteError) as caught:
        check_writable(tmp_path / "r.html")
    msg = str(caught.value)
    assert asked == [tmp_path] and "Read-only file system" in msg and "-o path" in msg, msg
    assert not list(tmp_path.iterdir())


def test_check_writable_accepts_a_writable_directory(tmp_path: Path) -> None:
    check_writable(tmp_path / "r.html")
    assert not list(tmp_path.iterdir())  # the probe file is gone
