"""The usage lines said `[model]`, `--save SAVE`, `--plot PLOT`, `out`: the README and every
message say MODEL, FILE and OUT.onnx. Usage now names them so."""

from __future__ import annotations

import pytest

from hjplug.cli import build_parser


@pytest.mark.parametrize(("command", "parts"), [
    ("inspect", ["[MODEL]"]),
    ("stats", ["[MODEL]", "--save FILE", "--stats LIST"]),
    ("sweep", ["[MODEL]", "--plot FILE", "--layers LIST", "--heads LIST", "--scales LO:HI:N"]),
    ("report", ["[MODEL]", "-o FILE"]),
    ("export-onnx", ["MODEL OUT.onnx"]),
])
def test_usage_names_the_arguments(command, parts) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    usage = " ".join(sub.choices[command].format_usage().split())
    for part in parts:
        assert part in usage, usage
