"""hjplug.paper.run_paper(seed=…) had no check of its own: 1.5 and True were truncated by int(),
2**70 overflowed inside torch mid-run. The entry point checks it as hjplug.verify does: one
InvalidArgumentError naming run_paper, the range `hjplug paper --seed` takes and the value,
before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hjplug.errors import InvalidArgumentError
from hjplug.identities import SEED_MAX
from hjplug.paper import run_paper


@pytest.mark.parametrize("seed", [2**70, -1, SEED_MAX + 1, 1.5, "3", True, None])
def test_bad_seed_is_refused_at_the_entry(seed: object, tmp_path: Path) -> None:
    out = tmp_path / "paper"
    with pytest.raises(InvalidArgumentError) as exc:
        run_paper(["identities"], out_dir=out, seed=seed)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert msg.startswith("hjplug.paper.run_paper: argument 'seed' must be an integer in "
                          f"[0, {SEED_MAX}]"), msg
    assert repr(seed) in msg and f"seed % {SEED_MAX + 1}" in msg
    assert not out.exists()  # refused before any work


def test_the_whole_range_is_accepted(tmp_path: Path) -> None:
    import numpy as np

    report = run_paper(["identities"], out_dir=tmp_path, seed=np.int64(SEED_MAX))
    assert report.seed == SEED_MAX and type(report.seed) is int
