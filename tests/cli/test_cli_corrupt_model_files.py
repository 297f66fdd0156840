"""A model directory whose weight or tokenizer files are corrupt, or a config.json transformers
rejects: one line naming the directory, what went wrong and what to do (exit 2), no traceback;
the user's files are left as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


def _one_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hjplug {command}: error: "), err
    return lines[0]


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    return d


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_corrupt_weight_file(weights, tmp_path, capsys) -> None:
    d = _model_dir(tmp_path)
    (d / weights).write_bytes(b"truncated")
    assert main(["inspect", str(d)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert str(d) in line and "weights" in line and "re-download" in line
    assert (d / weights).read_bytes() == b"truncated"


@pytest.mark.parametrize(("name", "content"), [("tokenizer.json", "{bad"),
                                               ("vocab.txt", "x\n")])
def test_corrupt_tokenizer_file(name, content, tmp_path, capsys) -> None:
    d = _model_dir(tmp_path)
    (d / name).write_text(content)
    assert main(["stats", str(d)]) == 2
    line = _one_line(capsys.readouterr().err, "stats")
    assert str(d) in line and "tokenizer" in line and name in line
    assert (d / name).read_text() == content


def test_config_transformers_rejects(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "hidden_size": 15}))
    assert main(["inspect", str(cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert "could not build 'bert'" in line and "hidden size (15)" in line
    assert "has no model for" not in line  # transformers has BERT: the config is the problem


@pytest.mark.parametrize("in_dir", [False, True])
def test_config_not_utf8(in_dir, tmp_path, capsys) -> None:
    cfg = (_model_dir(tmp_path) if in_dir else tmp_path) / "config.json"
    cfg.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["inspect", str(cfg.parent if in_dir else cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert str(cfg) in line and "not readable JSON" in line and "utf-8" in line


@pytest.mark.parametrize("value", ['"big"', "NaN", "1.5"])
def test_config_field_of_the_wrong_type(value, tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG)[:-1] + f', "hidden_size": {value}}}')
    assert main(["inspect", str(cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert str(cfg) in line and "invalid bert config" in line and "hidden_size" in line


@pytest.mark.parametrize("in_dir", [False, True])
def test_config_that_breaks_the_model_constructor(in_dir, tmp_path, capsys) -> None:
    cfg = (_model_dir(tmp_path) if in_dir else tmp_path) / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "num_attention_heads": 0}))  # hidden_size % 0
    assert main(["stats", str(cfg.parent if in_dir else cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "stats")
    assert "could not build 'bert'" in line and "modulo by zero" in line


def test_wrong_type_message_says_what_was_expected(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "hidden_size": "big"}))
    assert main(["inspect", str(cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert "expected int" in line and "'big'" in line
