"""`hjplug stats --stats S`: the per-head summary is built on the entropy, so a selection without
it (--stats curvature, gap, topk, …) printed an empty table ("0 heads/readouts"). The entropy is
always recorded; the chosen statistics show beside it."""

from __future__ import annotations

import json

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def config(tmp_path) -> str:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CONFIG))
    return str(p)


@pytest.mark.parametrize(("stats", "field"), [("curvature", "max_curvature"),
                                              ("gap", "mean_gap_ratio"),
                                              ("epsilon,lse", "mean_lse"),
                                              ("topk", "mean_entropy")])
def test_a_selection_without_entropy_still_lists_every_head(stats, field, config,
                                                            capsys) -> None:
    assert main(["stats", config, "--stats", stats, "--json"]) == 0
    heads = json.loads(capsys.readouterr().out)["heads"]
    assert len(heads) == 2 and all(h[field] is not None for h in heads)


def test_text_table_is_not_empty(config, capsys) -> None:
    assert main(["stats", config, "--stats", "curvature"]) == 0
    out = capsys.readouterr().out
    assert "2 heads/readouts: 2 wave" in out and "‖Cov‖/ε" in out
