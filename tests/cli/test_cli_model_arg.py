"""The MODEL argument (hjplug.cli._model_arg) behaves the same in every subcommand that takes
one: same help default, same one-line message for a missing path, offline, same exit codes."""

from __future__ import annotations

import os

import pytest

from hjplug.cli import build_parser, main
from hjplug.cli._model_arg import MODEL_HELP, load

MISSING = "/nonexistent/hjplug-model"


@pytest.mark.parametrize(("argv", "code"), [
    (["inspect", MISSING], 2),
    (["stats", MISSING], 2),
    (["sweep", MISSING, "--no-folds"], 2),
    (["report", MISSING], 2),
    (["export-onnx", MISSING, "out.onnx"], 2),
])
def test_missing_model_path(argv, code, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err == f"hjplug {argv[0]}: error: {MISSING}: no such file or directory.\n"
    assert not list(tmp_path.iterdir())  # nothing written


def test_unloadable_model_file(tmp_path, capsys) -> None:
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\0")
    assert main(["stats", str(bad)]) == 2
    assert capsys.readouterr().err == (f"hjplug stats: error: {bad}: expected a model directory "
                                       "or a config.json; got a .bin file.\n")


def test_positional_model_help_and_default() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("stats", "report"):
        (pos,) = [a for a in sub.choices[name]._actions if a.dest == "model"]
        assert pos.help == MODEL_HELP and pos.default is None and pos.nargs == "?"
    (pos,) = [a for a in sub.choices["export-onnx"]._actions if a.dest == "model"]
    assert pos.nargs is None  # required there


def test_load_is_offline_and_uses_the_current_load_model(monkeypatch) -> None:
    import hjplug.api

    seen = {}
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hjplug.api, "load_model", lambda source=None, text=None: seen.update(
        source=source, text=text, offline=os.environ.get("HF_HUB_OFFLINE")) or "loaded")
    assert load("some/dir", text="hi") == "loaded"
    assert seen == {"source": "some/dir", "text": "hi", "offline": "1"}
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a user's own setting is kept
    load(None)
    assert seen["offline"] == "0"
