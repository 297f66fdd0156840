"""Fixtures of the CLI tests: a tiny BERT config.json (random weights) and a guard that fails a
test if the model is loaded (for refusals that must come before any work)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY_CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
               "max_position_embeddings": 16}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A config.json of a 1-layer, 2-head BERT in its own directory."""
    d = tmp_path / "tiny"
    d.mkdir()
    p = d / "config.json"
    p.write_text(json.dumps(TINY_CONFIG))
    return p


@pytest.fixture
def refuse_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """hjplug.api.load_model fails the test: the refusal must come before the model loads."""
    import hjplug.api

    monkeypatch.setattr(hjplug.api, "load_model", lambda *a, **k: pytest.fail("loaded"))
    monkeypatch.setattr(hjplug.api, "inspect", lambda *a, **k: pytest.fail("inspected"))
