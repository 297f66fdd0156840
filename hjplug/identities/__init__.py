"""`hjplug verify`: the paper's identities, each against an independent evaluation (fp64)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from hjplug.identities.rows import VerifyReport, VerifyRow

__all__ = ["CHECKS", "VerifyReport", "VerifyRow", "verify"]


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
    """Run every identity check on fresh random fp64 data (seeded; a random seed if None)."""
    import torch

    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    gen = torch.Generator().manual_seed(seed)
    rows: list[VerifyRow] = []
    for check in _checks():
        if progress is not None:
            progress(check.__name__.removeprefix("check_"))
        rows.extend(check(gen))
    return VerifyReport(seed=seed, rows=tuple(rows))
