"""`hjplug stats --stats foo` said "hjplug stats: error: hjplug stats: argument 'stats' must be a
tuple of statistic names": the library's parameter, not the option, and the command twice. It
names --stats, shows what was given and lists the valid names (exit 2, before loading)."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize("given", ["foo", "entropy,foo", ",", ""])
def test_unknown_statistic_names_the_option(given, capsys, refuse_load) -> None:
    assert main(["stats", "--stats", given]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    line = lines[0]
    assert line.startswith("hjplug stats: error: argument '--stats' must be")
    assert line.count("hjplug stats") == 1 and "'stats'" not in line
    assert "epsilon, lse, entropy, gap, topk, curvature, weights" in line
    assert repr(given) in line
