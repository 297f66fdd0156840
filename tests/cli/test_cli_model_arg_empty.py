"""An empty MODEL argument (`hjplug inspect "$MODEL"` with MODEL unset) is refused with one
line, rather than read as the current directory."""

from __future__ import annotations

import json

import pytest

from hjplug.cli import main


@pytest.mark.parametrize("command", ["inspect", "stats", "report"])
def test_empty_model_argument(command, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))  # not to be read
    assert main([command, ""]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "MODEL is an empty string" in err and "leave it out" in err
