"""`hjplug verify`: the paper's identities, each against an independent evaluation (fp64)."""

from __future__ import annotations

import operator
import secrets
from collections.abc import Callable

from hjplug.errors import InvalidArgumentError
from hjplug.identities.rows import VerifyReport, VerifyRow

__all__ = ["CHECKS", "SEED_MAX", "VerifyReport", "VerifyRow", "verify"]

SEED_MAX = 2**32 - 1  # `hjplug verify --seed` and `hjplug paper --seed` take the same range


def _checks() -> tuple[Callable, ...]:
    from hjplug.identities.attention_check import check_attention
    from hjplug.identities.derivative_checks import (
        check_activations,
        check_entropy_derivatives,
        check_hessian,
    )
    from hjplug.identities.hopf_cole_checks import (
        check_gibbs_variational,
        check_hopf_cole_identity,
        check_pde,
        check_tropical,
    )

    return (
        check_hopf_cole_identity,
        check_pde,
        check_tropical,
        check_gibbs_variational,
        check_attention,
        check_hessian,
        check_entropy_derivatives,
        check_activations,
    )


CHECKS = ("hopf_cole_identity", "pde", "tropical", "gibbs_variational", "attention", "hessian",
          "entropy_derivatives", "activations")


def verify(seed: int | None = None, progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Run every identity check on fresh random fp64 data (seeded: an int in [0, SEED_MAX]; a
    random seed if None)."""
    import torch

    seed = secrets.randbelow(2**31) if seed is None else _checked_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rows: list[VerifyRow] = []
    for check in _checks():
        if progress is not None:
            progress(check.__name__.removeprefix("check_"))
        rows.extend(check(gen))
    return VerifyReport(seed=seed, rows=tuple(rows))


def _checked_seed(seed: object) -> int:
    """`seed` as an int in [0, SEED_MAX], or InvalidArgumentError (never torch's overflow)."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise InvalidArgumentError(
            "seed", f"an integer in [0, {SEED_MAX}] or None (a fresh random seed)", seed,
            where="hjplug.verify", hint=f"For a larger number, pass seed % {SEED_MAX + 1}.")
    return value
