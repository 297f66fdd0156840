"""hjplug.inspect(path, text=…) for a model whose inputs are synthesised (a config.json with
random weights, a directory without tokenizer files) dropped the sentence without a word; it is
refused with InvalidArgumentError naming the model. The bundled model still reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hjplug
from hjplug.errors import InvalidArgumentError

TINY_GPT2 = {"model_type": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "vocab_size": 50,
             "n_positions": 16, "bos_token_id": 0, "eos_token_id": 0}


@pytest.mark.parametrize("as_file", [True, False])
def test_text_for_synthesised_inputs_is_refused(tmp_path: Path, as_file: bool) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY_GPT2))
    target = tmp_path / "config.json" if as_file else tmp_path
    with pytest.raises(InvalidArgumentError) as info:
        hjplug.inspect(str(target), text="the cat sat")
    msg = str(info.value)
    assert msg.startswith("hjplug.inspect: argument 'text'") and "synthesised" in msg
    assert "'the cat sat'" in msg and "tokenizer.json or vocab.txt" in msg
    assert hjplug.inspect(str(target)).kinds()["attention"] == 1  # without text: fine


def test_bundled_model_reads_text() -> None:
    report = hjplug.inspect(None, text="a different sentence entirely")
    assert "a different sentence entirely" in report.source
