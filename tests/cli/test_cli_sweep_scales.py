"""`hjplug sweep --scales`: every bad grid (λ ≤ 0, NaN, ∞, empty, malformed) is refused before
the model is loaded, in the option's own words; a valid wide log grid stays finite."""

from __future__ import annotations

import math

import pytest

from hjplug.cli import main
from hjplug.cli.sweep import parse_scales


@pytest.fixture
def no_load(monkeypatch):
    import hjplug.api

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the bad --scales was refused")

    monkeypatch.setattr(hjplug.api, "load_model", boom)


@pytest.mark.parametrize("scales", ["nan:1:5", "1:nan:3", "inf:1:3", "0:1:5", "-1:1:5",
                                    "0.1:1:0", "1:2", "abc", "", ",", "1,2,nan", "1,0", "1,-2",
                                    "1,inf", "1e-300:1e310:3"])
def test_bad_scales_refused_before_loading(scales, capsys, no_load) -> None:
    assert main(["sweep", "--no-folds", f"--scales={scales}"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hjplug sweep: error: argument '--scales' must be "), err
    assert f"got {scales!r}" in lines[0] and "finite" in lines[0]


def test_wide_log_grid_stays_finite() -> None:
    got = parse_scales("1e-300:1e300:3")
    assert all(math.isfinite(v) and v > 0 for v in got)
    assert got == pytest.approx([1e-300, 1.0, 1e300], rel=1e-9)
    assert parse_scales("0.01:10:4") == pytest.approx([0.01, 0.1, 1.0, 10.0], rel=1e-12)
    assert parse_scales("2:2:1") == [2.0] and parse_scales("0.5, 2") == [0.5, 2.0]
