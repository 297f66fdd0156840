"""`hjplug sweep --layers -1` ran (Python's negative indexing picked the last block) and
`--layers ""` failed after loading with the library's parameter name. Indices must be ≥ 0 and
at least one must be given: refused before loading, naming the option (exit 2)."""

from __future__ import annotations

import pytest

from hjplug.cli import main


@pytest.mark.parametrize(("option", "given"), [("--layers", "-1"), ("--layers", "0,-2"),
                                               ("--heads", "-1"), ("--layers", ""),
                                               ("--heads", ",")])
def test_negative_or_empty_indices_are_refused(option, given, tiny_config, capsys,
                                               refuse_load) -> None:
    assert main(["sweep", str(tiny_config), "--no-folds", option, given]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"argument '{option}' must be" in lines[0] and "≥ 0" in lines[0]
    assert repr(given) in lines[0]


def test_out_of_range_layer_names_the_option(tiny_config, capsys) -> None:
    assert main(["sweep", str(tiny_config), "--no-folds", "--scales", "1", "--layers", "3"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("hjplug sweep: error: argument '--layers' must be"), line
    assert "[0, 1)" in line
