"""hjplug.verify(seed=2**70) raised "ValueError: Overflow when unpacking long long" from inside
torch. The entry point checks the seed: one InvalidArgumentError naming hjplug.verify, the
range (the same as `hjplug verify --seed`) and the value."""

from __future__ import annotations

import pytest

import hjplug
from hjplug.cli._seed import SEED_MAX
from hjplug.errors import InvalidArgumentError


@pytest.mark.parametrize("seed", [2**70, -1, SEED_MAX + 1, 1.5, "3", True])
def test_bad_seed_is_refused_at_the_entry(seed) -> None:
    with pytest.raises(InvalidArgumentError) as exc:
        hjplug.verify(seed=seed)
    msg = str(exc.value)
    assert msg.startswith("hjplug.verify: argument 'seed' must be an integer in "
                          f"[0, {SEED_MAX}] or None"), msg
    assert repr(seed) in msg


def test_cli_and_api_share_the_range() -> None:
    from hjplug import identities

    assert identities.SEED_MAX == SEED_MAX
    assert hjplug.verify(seed=SEED_MAX).seed == SEED_MAX
