"""--text on a MODEL without a tokenizer (a config.json, an .onnx file, a directory without
tokenizer.json / vocab.txt) was silently ignored: synthesised inputs were used instead. It is
refused before any work with one line: what --text needs, what MODEL is, what to do (exit 2)."""

from __future__ import annotations

import pytest

from hjplug.cli import main

COMMANDS = [["inspect"], ["stats"], ["sweep", "--no-folds"], ["report", "-o", "{out}"]]


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "--text" in lines[0] and "tokenizer" in lines[0] and "Leave out --text" in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_text_with_a_config_json(command, tiny_config, tmp_path, capsys, refuse_load) -> None:
    argv = [a.format(out=tmp_path / "r.html") for a in command]
    line = _refused([*argv, str(tiny_config), "--text", "hello"], capsys)
    assert str(tiny_config) in line and "config.json" in line
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_text_with_a_directory_without_tokenizer(command, tiny_config, tmp_path, capsys,
                                                 refuse_load) -> None:
    argv = [a.format(out=tmp_path / "r.html") for a in command]
    line = _refused([*argv, str(tiny_config.parent), "--text", "hello"], capsys)
    assert str(tiny_config.parent) in line and "tokenizer.json or vocab.txt" in line


def test_text_with_a_cached_model_id_without_tokenizer(tiny_config, tmp_path, capsys,
                                                      monkeypatch, refuse_load) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(tiny_config.read_text())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    line = _refused(["stats", "org/tiny", "--text", "hello"], capsys)
    assert str(snap) in line and "tokenizer.json or vocab.txt" in line


def test_text_with_an_onnx_file(tmp_path, capsys, refuse_load) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not read")
    line = _refused(["inspect", str(onnx_file), "--text", "hello"], capsys)
    assert str(onnx_file) in line and ".onnx" in line


def test_config_json_beside_a_tokenizer_names_its_directory(tiny_config, capsys,
                                                             refuse_load) -> None:
    (tiny_config.parent / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    line = _refused(["stats", str(tiny_config), "--text", "hello"], capsys)
    assert f"pass the directory {tiny_config.parent}" in line


def test_text_reaches_a_model_with_a_tokenizer(tiny_config, capsys, monkeypatch) -> None:
    import hjplug.api
    from hjplug.api import ModelLoadError

    seen: list[str | None] = []

    def load(source: object = None, *, text: str | None = None) -> None:
        seen.append(text)
        raise ModelLoadError("stop here")

    monkeypatch.setattr(hjplug.api, "load_model", load)
    (tiny_config.parent / "tokenizer.json").write_text("{}")
    assert main(["stats", str(tiny_config.parent), "--text", "hello"]) == 2
    assert main(["stats", "--text", "hello"]) == 2  # the bundled model has a tokenizer
    assert seen == ["hello", "hello"] and "stop here" in capsys.readouterr().err
