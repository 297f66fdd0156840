"""`hjplug report --threads N`: N above the machine's CPU count (e.g. a typo, 100000) crashed
torch's thread pool with a traceback after the model loaded; it is refused first, one line."""

from __future__ import annotations

import os

import pytest

from hjplug.cli import main


@pytest.fixture(autouse=True)
def no_load(monkeypatch):
    import hjplug.api

    monkeypatch.setattr(hjplug.api, "load_model", lambda *a, **k: pytest.fail("loaded"))


@pytest.mark.parametrize("threads", ["0", "100000"])
def test_threads_out_of_range(threads, tmp_path, capsys) -> None:
    assert main(["report", "-o", str(tmp_path / "r.html"), "--threads", threads]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"argument '--threads' must be an int in [1, {os.cpu_count()}]" in err
    assert not list(tmp_path.iterdir())
