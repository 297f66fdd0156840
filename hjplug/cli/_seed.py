"""The --seed option of `hjplug verify` and `hjplug paper`, checked by the argument parser.

torch.Generator.manual_seed overflows outside 64 bits, and the paper seeds each experiment with
seed·1000 + offset; [0, 2³² − 1] is safe for both and refused with one line (exit 2) outside.
"""

from __future__ import annotations

import argparse

from hjplug.identities import SEED_MAX  # hjplug.verify(seed=…) checks the same range

__all__ = ["SEED_MAX", "seed"]


def seed(text: str) -> int:
    """argparse type: an int in [0, SEED_MAX]."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [0, {SEED_MAX}]; got {text!r}")
    return value
