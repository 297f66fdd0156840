"""`--text ""` (or only spaces) was replaced by the built-in sentence without a word: the run
used a text the user did not give. It is refused before loading: one line, exit 2."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize("command", [["inspect"], ["stats"], ["sweep", "--no-folds"],
                                     ["report", "-o", "{out}"]])
@pytest.mark.parametrize("text", ["", "  "])
def test_empty_text_is_refused(command, text, tmp_path, capsys, refuse_load) -> None:
    argv = [a.format(out=tmp_path / "r.html") for a in command]
    assert main([*argv, "--text", text]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "--text is empty" in lines[0] and "leave it out" in lines[0]
    assert not (tmp_path / "r.html").exists()
