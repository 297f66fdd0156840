"""--text longer than the model's position table (max_position_embeddings): `hjplug stats`
crashed inside the embedding with a traceback and `hjplug inspect` blamed torch.export; both now
say how many tokens the text has and how many the model takes (exit 2)."""

from __future__ import annotations

import json

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                            "word"]) + "\n")
    return d


@pytest.mark.parametrize("command", ["stats", "inspect"])
def test_text_longer_than_the_model_takes(command, model_dir, capsys) -> None:
    assert main([command, str(model_dir), "--text", "word " * 20]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "22 tokens" in lines[0] and "at most 16" in lines[0] and "shorter" in lines[0]


def test_text_that_fits(model_dir, capsys) -> None:
    assert main(["stats", str(model_dir), "--text", "word " * 14, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["heads"]) == 2
