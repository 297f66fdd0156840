"""ε → λ·ε on the attention steps of an `hjplug.convert` result (one ε per step), persistent
or scoped; shared by `hjplug.deform` and `hjplug.instrument.deform`."""

from __future__ import annotations

from collections.abc import Sequence

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

        if heads is not None:
            raise InvalidArgumentError("heads", "None for an FX-converted model (an "
                                       "HJAttentionStep has one ε per block)", heads, where=where)
        lam = float(scale) if isinstance(scale, int | float) else float("nan")
        if not 0 <= lam < float("inf"):
            raise InvalidArgumentError("scale", "a finite λ ≥ 0 (0 = hard-max attention)", scale,
                                       where=where)
        steps = attention_steps(model)
        chosen = [steps[i][1] for i in fx_layers(steps, layers, where)]
        self._saved = [(step, step.epsilon) for step in chosen]
        try:
            for step in chosen:
                step.epsilon = lam * float(step.identified_epsilon)
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
