"""An empty output path (--save "", --plot "", -o "", OUT "") was taken as "no output" (stats,
sweep: nothing written, exit 0) or as the current directory (paper wrote its files there; report
and export-onnx said '.: is a directory'). It is refused before any work: one line, exit 2."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize(("argv", "option"), [
    (["stats", "{m}", "--save", ""], "--save"),
    (["sweep", "{m}", "--no-folds", "--plot", ""], "--plot"),
    (["report", "{m}", "-o", ""], "-o"),
    (["export-onnx", "{m}", ""], "OUT.onnx"),
    (["paper", "1", "-o", ""], "-o"),
])
def test_empty_output_path_is_refused(argv, option, tiny_config, tmp_path, capsys, monkeypatch,
                                      refuse_load) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([a.format(m=tiny_config) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{option} is an empty string" in lines[0] and "e.g." in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
