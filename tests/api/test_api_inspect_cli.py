"""`hjplug.inspect` / `hjplug.convert` on the real MiniLM and the `hjplug inspect` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hjplug
from hjplug.cli import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def minilm():
    from hjplug.api import load_model

    loaded = load_model(None)
    return loaded, hjplug.inspect(loaded.model, loaded.inputs)


def test_minilm_report(minilm) -> None:
    _, report = minilm
    # 6 layers × (1 attention, 2 residual, 1 GELU) + the pooler's tanh
    assert report.kinds() == {"attention": 6, "residual": 12, "activation": 7}
    att = [b for b in report.blocks if b.kind == "attention"]
    assert all(b.epsilon == pytest.approx(32**0.5) for b in att)  # 384 / 12 heads
    assert all(b.hamiltonian.params["heads"] == 12 for b in att)
    again = hjplug.api.InspectReport.from_json(report.to_json())
    assert again == report
    text = str(report)
    assert "encoder.layer.5.attention.self" in text and "exact" in text


def test_minilm_convert_parity(minilm) -> None:
    import hjzoo_api as z

    loaded, _ = minilm
    before = z.checksum(loaded.model)
    hj = hjplug.convert(loaded.model, loaded.inputs)
    with torch.no_grad():
        ref = loaded.model(**loaded.inputs).last_hidden_state
        out = hj(**loaded.inputs).last_hidden_state
    assert float((ref - out).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    assert z.checksum(loaded.model) == before


def test_cli_default_json(capsys) -> None:
    assert main(["inspect", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "all-MiniLM-L6-v2" and "real weights" in data["source"]
    assert data["kinds"] == {"attention": 6, "residual": 12, "activation": 7}


def test_cli_config_json_random_weights(tmp_path: Path, capsys) -> None:
    cfg = {"model_type": "gpt2", "n_layer": 3, "n_embd": 32, "n_head": 4, "vocab_size": 50,
           "n_positions": 32, "bos_token_id": 0, "eos_token_id": 0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert main(["inspect", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "random weights" in data["source"]
    assert data["kinds"] == {"attention": 3, "residual": 6, "activation": 3}


@pytest.mark.parametrize(
    ("argument", "needle"),
    [
        ("/nonexistent/model_dir", "no such file or directory"),
        ("unknown-org/unknown-model", "local Hugging Face cache"),
    ],
)
def test_cli_bad_model_argument(argument: str, needle: str, capsys) -> None:
    assert main(["inspect", argument]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_architecture(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "hj_unknown_arch", "hidden_size": 8}))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture model_type='hj_unknown_arch'" in err
    assert "Traceback" not in err


def test_cli_subprocess_table() -> None:
    """The README's main job, as a user runs it: a table, exit 0, no traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    proc = subprocess.run([sys.executable, "-m", "hjplug", "inspect"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "encoder.layer.0.attention.self" in proc.stdout
    assert "25 blocks" in proc.stdout and "Traceback" not in proc.stderr


def test_import_hjplug_stays_light() -> None:
    code = ("import sys, hjplug; hjplug.inspect; hjplug.convert; "
            "print(any(m in sys.modules for m in ('transformers', 'onnx', 'triton')))")
    code_lazy = "import sys, hjplug; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code_lazy], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_cli_model_id_from_local_cache(tmp_path: Path, monkeypatch, capsys) -> None:
    """A model id resolves through the local HF cache layout only (nothing is downloaded)."""
    snap = tmp_path / "models--tiny-org--tiny-llama" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (tmp_path / "models--tiny-org--tiny-llama" / "refs").mkdir()
    (tmp_path / "models--tiny-org--tiny-llama" / "refs" / "main").write_text("abc123")
    cfg = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 32,
           "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 64,
           "vocab_size": 64, "max_position_embeddings": 64}
    (snap / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert main(["inspect", "tiny-org/tiny-llama", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "tiny-org/tiny-llama" and "random weights" in data["source"]
    assert data["kinds"] == {"attention": 2, "residual": 4, "activation": 2}
