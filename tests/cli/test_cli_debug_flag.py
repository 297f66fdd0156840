"""--debug works where users type it: before the subcommand or after it (then the error
propagates with its traceback); without it, the same error is one line."""

from __future__ import annotations

import pytest

from hjplug.api import ModelLoadError
from hjplug.cli import main

MISSING = "/nonexistent/hjplug-model"


@pytest.mark.parametrize("argv", [["--debug", "inspect", MISSING], ["inspect", MISSING, "--debug"],
                                  ["stats", "--debug", MISSING],
                                  ["export-onnx", MISSING, "out.onnx", "--debug"]])
def test_debug_anywhere_raises(argv, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError):
        main(argv)


def test_without_debug_one_line(capsys) -> None:
    assert main(["inspect", MISSING]) == 2
    assert capsys.readouterr().err.count("\n") == 1
