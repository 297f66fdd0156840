"""`hjplug export-onnx MODEL OUT.onnx`: an OUT.onnx below a file is refused for what it is (a
file, not a missing directory) before the model loads; a run prints no exporter log noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CONFIG))
    return p


def test_output_below_a_file(config, tmp_path, capsys, monkeypatch) -> None:
    import hjplug.api

    monkeypatch.setattr(hjplug.api, "load_model", lambda *a, **k: pytest.fail("loaded"))
    (tmp_path / "file").write_text("keep")
    assert main(["export-onnx", str(config), str(tmp_path / "file" / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"{tmp_path / 'file'} is a file, not a directory" in err and "does not exist" not in err
    assert (tmp_path / "file").read_text() == "keep"


def test_export_prints_no_exporter_log_noise(config, tmp_path) -> None:
    out = tmp_path / "m.onnx"
    proc = subprocess.run([sys.executable, "-m", "hjplug", "export-onnx", str(config), str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "1 attention" in proc.stdout
    assert "torchvision" not in proc.stderr, proc.stderr
