"""The tables of `hjplug inspect` / `stats` / `sweep` printed to a pipe or a file (CI logs,
`./dev.sh main | less`): rich would clip them at 80 columns, cutting off whole columns
(inspect's exactness, --explain's notes) or numbers ('0.000…'). Every column and digit is there."""

from __future__ import annotations

import json

import pytest

from hjplug.cli import main

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 12,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def config(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("COLUMNS", raising=False)  # rich's default for a pipe: 80 columns
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CONFIG))
    return str(p)


def _plain(out: str) -> list[str]:
    assert "…" not in out, out
    return out.splitlines()


def test_inspect_table_keeps_every_column(config, capsys) -> None:
    assert main(["inspect", config]) == 0
    lines = _plain(capsys.readouterr().out)
    assert any("exactness" in ln for ln in lines)
    assert sum("│ exact " in ln for ln in lines) == 13  # 12 attention blocks, the pooler tanh
    assert sum("structural" in ln for ln in lines) == 24


def test_inspect_explain_keeps_the_notes_column(config, capsys) -> None:
    assert main(["inspect", config, "--explain"]) == 0
    lines = _plain(capsys.readouterr().out)
    header = next(ln for ln in lines if "exactness" in ln)
    assert header.rstrip().rstrip("┃").rstrip().endswith("notes")


def test_inspect_fits_an_80_column_terminal(config) -> None:
    import io

    from rich.console import Console

    import hjplug

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(hjplug.inspect(config).rich_table(explain=True))
    text = console.export_text()
    assert "exactness" in text and "notes" in text and "structural" in text


def test_stats_numbers_are_not_cut(config, capsys) -> None:
    assert main(["stats", config, "--stats", "epsilon,lse,entropy,gap,curvature"]) == 0
    lines = _plain(capsys.readouterr().out)
    assert any("bound" in ln for ln in lines)
    assert sum(ln.startswith("│ layers.") for ln in lines) == 24  # 12 layers × 2 heads


def test_sweep_table_keeps_every_layer(config, capsys) -> None:
    assert main(["sweep", config, "--scales", "0.5:2:3", "--no-folds", "--no-fixed"]) == 0
    lines = _plain(capsys.readouterr().out)
    assert any("layers.11" in ln for ln in lines)
