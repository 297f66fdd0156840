"""`stats --save` writes JSON for .json and a torch pickle for .pt; `sweep --plot` writes PNG.
Any other suffix (stats.txt, plot.pdf) would get a file of the wrong format under that name: it
is refused before the model loads, saying which suffixes work."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.fixture(autouse=True)
def no_load(monkeypatch):
    import hjplug.api

    monkeypatch.setattr(hjplug.api, "load_model", lambda *a, **k: pytest.fail("loaded"))


@pytest.mark.parametrize(("argv", "name", "expected"), [
    (["stats", "--save"], "stats.txt", ".json"),
    (["stats", "--save"], "stats", ".pt"),
    (["sweep", "--no-folds", "--plot"], "plot.pdf", ".png"),
])
def test_wrong_output_suffix_is_refused(argv, name, expected, tmp_path, capsys) -> None:
    target = tmp_path / name
    assert main([*argv, str(target)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(target) in lines[0] and expected in lines[0]
    assert not list(tmp_path.iterdir())
