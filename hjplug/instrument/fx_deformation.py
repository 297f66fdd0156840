"""ε → λ·ε on the attention steps of an `hjplug.convert` result (per step, or per head for
chosen heads), persistent or scoped; shared by `hjplug.deform` and `hjplug.instrument.deform`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from hjplug.errors import InvalidArgumentError

__all__ = ["FXDeformation"]


class FXDeformation:
    """ε → λ·ε on the attention steps of an `hjplug.convert` result: applied at once and kept
    (persistent), or undone on leaving a `with` block / by `.restore()` (exactly: each step's
    previous ε is put back)."""

    def __init__(self, model: nn.Module, scale: float, layers: Sequence[int] | int | None,
                 heads: Sequence[int] | int | None, where: str = "hjplug.deform") -> None:
        from hjplug.instrument._fx import attention_steps
        from hjplug.instrument.context import fx_layers

        lam = float(scale) if isinstance(scale, int | float) else float("nan")
        if not 0 <= lam < float("inf"):
            raise InvalidArgumentError("scale", "a finite λ ≥ 0 (0 = hard-max attention)", scale,
                                       where=where)
        steps = attention_steps(model)
        chosen = [steps[i][1] for i in fx_layers(steps, layers, where, model)]
        values = [_values(step, lam, heads, where) for step in chosen]
        self._saved = [(step, step.epsilon) for step in chosen]
        try:
            for step, value in zip(chosen, values, strict=True):
                step.epsilon = value
        except BaseException:
            self.restore()  # never leave the model half deformed
            raise

    def restore(self) -> None:
        for step, previous in reversed(self._saved):
            if previous == step.identified_epsilon:
                step.reset_epsilon()
            else:
                step.epsilon = previous
        self._saved = []

    def __enter__(self) -> FXDeformation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _values(step: Any, lam: float, heads: Sequence[int] | int | None, where: str
            ) -> float | tuple[float, ...]:
    """λ·ε₀ for the whole step, or per head: λ·ε₀ on the chosen heads, ε₀ on the others."""
    eps0 = float(step.identified_epsilon)
    if heads is None:
        return lam * eps0
    n = step.spec.hamiltonian.params.get("heads")
    if not isinstance(n, int):
        raise InvalidArgumentError("heads", f"None for {step.spec.path} (its head count is not "
                                   "known statically)", heads, where=where)
    items = [heads] if isinstance(heads, int) else list(heads)
    for h in items:
        if isinstance(h, bool) or not isinstance(h, int) or not -n <= h < n:
            raise InvalidArgumentError("heads", f"head indices in [0, {n}) of {step.spec.path}",
                                       h, where=where)
    if lam == 0:
        raise InvalidArgumentError("scale", "> 0 when heads are chosen on an FX-converted model "
                                   "(the hard-max limit is per block: heads=None)", lam,
                                   where=where)
    chosen = {h % n for h in items}
    return tuple(lam * eps0 if h in chosen else eps0 for h in range(n))
