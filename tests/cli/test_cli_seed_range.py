"""--seed of `hjplug verify` and `hjplug paper`: a seed torch cannot take is refused by the
argument parser (one line naming the range, exit 2), never a traceback from manual_seed."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize("command", [["verify"], ["paper", "1"]])
@pytest.mark.parametrize("seed", ["99999999999999999999", "-1", "4294967296"])
def test_out_of_range_seed_is_refused(command, seed, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*command, "--seed", seed])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"argument --seed: expected an integer in [0, 4294967295]; got {seed!r}" in err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_largest_seed_is_accepted(capsys) -> None:
    assert main(["verify", "--json", "--seed", "4294967295"]) == 0
    assert '"seed": 4294967295' in capsys.readouterr().out
