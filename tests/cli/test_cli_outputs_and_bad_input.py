"""Output paths and bad input on the command line: refused before any work with one line (what
was expected, what was found, where, what to do), and never at the cost of the user's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def no_load(monkeypatch):
    """Loading the model fails the test: every refusal here must come before it."""
    import hjplug.api

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the bad output path was refused")

    monkeypatch.setattr(hjplug.api, "load_model", boom)


@pytest.fixture
def config(tmp_path) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CONFIG))
    return p


def _one_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"hjplug {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize(("argv", "command"), [
    (["stats", "--save", "{d}"], "stats"),
    (["sweep", "--no-folds", "--plot", "{d}"], "sweep"),
    (["sweep", "--no-folds", "--plot", "{d}/missing/plot.png"], "sweep"),
    (["stats", "--save", "{f}/below-a-file.json"], "stats"),
])
def test_bad_output_paths_are_refused_before_loading(argv, command, tmp_path, capsys,
                                                     no_load) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "file").write_text("keep")
    argv = [a.format(d=tmp_path / "out", f=tmp_path / "file") for a in argv]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err, command)
    assert ("directory" in line) and ("choose another" in line or "give a file" in line)
    assert (tmp_path / "file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("argv", "command"), [
    (["stats", "{m}", "--save", "{m}"], "stats"),
    (["sweep", "{m}", "--no-folds", "--plot", "{m}"], "sweep"),
    (["report", "{m}", "-o", "{m}"], "report"),
    (["report", "{d}", "-o", "{m}"], "report"),  # an existing file of the model directory
])
def test_an_output_path_never_overwrites_the_model_it_reads(argv, command, config, capsys,
                                                            no_load) -> None:
    text = config.read_text()
    argv = [a.format(m=config, d=config.parent) for a in argv]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err, command)
    assert "would overwrite" in line and "choose another" in line
    assert config.read_text() == text
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]


def test_report_write_interrupted_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    import hjplug.htmlreport.render as render

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "match_plain_write", interrupted)
    target = tmp_path / "report.html"
    with pytest.raises(KeyboardInterrupt):
        render.write_atomic(target, b"<html></html>")
    assert not list(tmp_path.iterdir())


def test_a_directory_without_config_json_says_what_to_pass(tmp_path, capsys) -> None:
    assert main(["stats", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err, "stats")
    assert str(tmp_path) in line and "config.json" in line and "Pass " in line


@pytest.mark.parametrize("command", ["stats", "sweep", "report"])
def test_an_onnx_file_where_a_model_is_needed_points_to_inspect(command, tmp_path,
                                                                capsys) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\0")
    assert main([command, str(onnx_file)]) == 2
    line = _one_line(capsys.readouterr().err, command)
    assert str(onnx_file) in line and "hjplug inspect" in line


def test_a_config_without_model_type_says_what_to_add(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    assert main(["inspect", str(cfg)]) == 2
    line = _one_line(capsys.readouterr().err, "inspect")
    assert "model_type" in line and "add" in line.lower()


def test_export_onnx_never_overwrites_the_model_it_reads(config, capsys, no_load) -> None:
    text = config.read_text()
    assert main(["export-onnx", str(config), str(config)]) == 2
    line = _one_line(capsys.readouterr().err, "export-onnx")
    assert "would overwrite" in line and "choose another" in line
    assert config.read_text() == text


def test_sweep_lists_exits_apart_from_folds() -> None:
    from types import SimpleNamespace

    from hjplug.cli.sweep import _exits

    exit_ = SimpleNamespace(eps=0.5, eps_lo=0.4, eps_hi=0.6, minima_before=2, minima_after=1)
    assert _exits(SimpleNamespace(fold_scan=SimpleNamespace(exits=(exit_,)))) == (exit_,)
    assert _exits(SimpleNamespace(fold_scan=None)) == ()
