"""--text for a model whose main input is not input_ids (a vision model whose directory also holds
tokenizer files) was dropped silently: the inputs were synthesised. Once the model is loaded it
is refused with one line — what --text needs, what the model reads, what to do (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hjplug.cli import main

TINY_VIT = {"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 24, "image_size": 8,
            "patch_size": 4, "num_channels": 3}
COMMANDS = [["inspect"], ["stats"], ["sweep", "--no-folds"], ["report", "-o", "{out}"]]


@pytest.fixture
def vit_dir(tmp_path: Path) -> Path:
    """A tiny ViT (random weights) whose directory also holds a vocab.txt."""
    d = tmp_path / "vit"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(TINY_VIT))
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    return d


@pytest.mark.parametrize("command", COMMANDS)
def test_text_for_a_vision_model_is_refused(command: list[str], vit_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(out=tmp_path / "r.html") for a in command]
    assert main([*argv, str(vit_dir), "--text", "hello"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    line = lines[0]
    assert line.startswith(f"hjplug {command[0]}: error: --text")
    assert "input_ids" in line and "pixel_values" in line and str(vit_dir) in line
    assert "would be ignored" in line and "Leave out --text" in line
    assert not (tmp_path / "r.html").exists()


def test_the_same_model_without_text_is_inspected(vit_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(vit_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"].startswith("vit") and str(vit_dir) in report["source"]
    assert report["capture"] == "torch.export"
