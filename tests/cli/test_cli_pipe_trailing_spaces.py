"""On a pipe the console is widened to the widest table (so nothing is clipped), and rich padded
the table title — centred over that width — with trailing spaces: `hjplug inspect … | head -1`
showed them. Lines written to a pipe carry no trailing spaces; the tables stay whole."""

from __future__ import annotations

import io
import json

import pytest

from hjplug.cli import main
from hjplug.cli._console import stdout_console

CONFIG = {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 24, "vocab_size": 30,
          "max_position_embeddings": 16}


@pytest.fixture
def config(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe: the console is widened
    p = tmp_path / "config.json"
    p.write_text(json.dumps(CONFIG))
    return str(p)


def _no_trailing_spaces(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines and not [ln for ln in lines if ln != ln.rstrip()], out
    return lines


@pytest.mark.parametrize("argv", [["inspect"], ["inspect", "--explain"],
                                  ["stats", "--stats", "epsilon,lse,entropy"]])
def test_pipe_output_has_no_trailing_spaces(argv, config, capsys) -> None:
    assert main([argv[0], config, *argv[1:]]) == 0
    lines = _no_trailing_spaces(capsys.readouterr().out)
    assert "bert" in lines[0]  # the title, as `| head -1` shows it
    top = next(i for i, ln in enumerate(lines) if ln.startswith("┏"))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("└"))
    table = lines[top:end + 1]  # the first table: full and aligned, its right border kept
    assert len({len(ln) for ln in table}) == 1 and all(ln[-1] in "┓┃┩│┘" for ln in table)


def test_partial_writes_keep_inner_spaces(monkeypatch) -> None:
    from rich.table import Table

    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table(title="t")
    table.add_column("a")
    table.add_row("x")
    out = stdout_console(table)
    out.print("a  ", end="")
    out.print("b   ", end="")
    out.print(" c  ")
    out.print(table)
    text = buffer.getvalue()
    assert text.splitlines()[0] == "a  b    c"
    _no_trailing_spaces(text)


def test_verify_title_has_no_trailing_spaces(capsys) -> None:
    assert main(["verify", "--seed", "1"]) == 0  # stdout_console() with no table to measure
    lines = _no_trailing_spaces(capsys.readouterr().out)
    assert lines[0] == "hjplug verify — seed 1, fp64"
