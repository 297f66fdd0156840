"""run_export_cli (what `hjplug export-onnx MODEL OUT.onnx [--stats] [--opset N]` calls): a
config.json (random weights) exported with statistics; bad references give one error line."""

from __future__ import annotations

import json

import onnx
import pytest

from hjplug.cli.export_onnx import run_export_cli

TINY_BERT = {"model_type": "bert", "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 37, "max_position_embeddings": 64}


@pytest.mark.slow
def test_cli_exports_a_config(tmp_path, capsys) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_BERT))
    out = tmp_path / "bert.onnx"
    assert run_export_cli(str(cfg), str(out), True, 18) == 0
    text = capsys.readouterr().out
    assert "2 attention" in text and "statistics outputs: 4" in text
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 18 or any(
        o.version == 18 for o in model.opset_import if o.domain == "")
    assert sum(o.name.startswith("hjplug.stats/") for o in model.graph.output) == 4


def test_cli_errors(tmp_path, capsys) -> None:
    assert run_export_cli(str(tmp_path / "nothing.json"), str(tmp_path / "m.onnx"), False,
                          None) == 2  # bad input: exit 2, as every subcommand
    err = capsys.readouterr().err
    assert err.startswith("hjplug export-onnx: error:") and "nothing.json" in err
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_BERT))
    assert run_export_cli(str(cfg), str(tmp_path / "no" / "m.onnx"), False, None) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_hjplug_command_exports_then_inspects_the_file(tmp_path, capsys) -> None:
    """The registered subcommands end to end: `hjplug export-onnx`, then `hjplug inspect F.onnx`."""
    from hjplug.cli import main

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_BERT))
    out = tmp_path / "bert.onnx"
    assert main(["export-onnx", str(cfg), str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    kinds = [b["kind"] for b in report["blocks"]]
    assert kinds.count("attention") == 2 and kinds.count("residual") == 4
    eps = [b["epsilon"] for b in report["blocks"] if b["kind"] == "attention"]
    assert all(e == pytest.approx(8**0.5) for e in eps)
    assert main(["inspect", str(tmp_path / "missing.onnx")]) == 2
