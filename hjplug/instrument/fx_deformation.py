"""ε → λ·ε on the attention steps of an `hjplug.convert` result (per step, or per head for
chosen heads), persistent or scoped; shared by `hjplug.deform` and `hjplug.instrument.deform`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from hjplug.errors import InvalidArgumentError

__all__ = ["FXDeformation", "step_heads"]


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
    slices, n = step_heads(step)
    if n is None:
        raise InvalidArgumentError("heads", f"None for {step.spec.path} (its head count is not "
                                   "known statically)", heads, where=where)
    merged = "" if slices == n else (f" (3-D [B·H, S, d] layout, H = {n}: head h is deformed "
                                     "in every batch element)")
    items = [heads] if isinstance(heads, int) else list(heads)
    for h in items:
        if isinstance(h, bool) or not isinstance(h, int) or not -n <= h < n:
            raise InvalidArgumentError("heads", f"head indices in [0, {n}) of "
                                       f"{step.spec.path}{merged}", h, where=where)
    if lam == 0:
        raise InvalidArgumentError("scale", "> 0 when heads are chosen on an FX-converted model "
                                   "(the hard-max limit is per block: heads=None)", lam,
                                   where=where)
    chosen = {h % n for h in items}
    # one ε per head; a 3-D [B·H, S, d] step tiles it over the runtime batch (ε_{b·H+h} = ε_h)
    return tuple(lam * eps0 if h in chosen else eps0 for h in range(n))


def step_heads(step: Any) -> tuple[int | None, int | None]:
    """(slices on the queries' dim −3 at capture, heads H) of an attention step: equal for
    [B, H, S, d]; (B·H, H) for a 3-D [B·H, S, d] layout whose H the rule read
    (`heads_per_batch`), whose step takes one ε per head — (None, H) when B·H is a dynamic size
    (hjplug.convert(..., dynamic=True)). (None, None) when H is not known."""
    params = step.spec.hamiltonian.params
    n, per = params.get("heads"), params.get("heads_per_batch")
    n = n if isinstance(n, int) and not isinstance(n, bool) else None
    if isinstance(per, int) and not isinstance(per, bool) and per > 0 and (n is None or
                                                                          n % per == 0):
        return n, per
    return (None, None) if n is None else (n, n)
