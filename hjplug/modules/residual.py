"""HJResidualStep: x_{l+1} = x_l + h·F(x_l), a forward-Euler step of ẋ = ∂ℋ/∂p, ℋ = p·F(x, θ).

Deterministic (ε = 0); the co-state recursion p_l = (I + h ∂F/∂x)ᵀ p_{l+1} is backprop (exact);
the HJB reading is structural. `time_step` h is settable (1 per block unless a scale was found).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError
from hjplug.modules.base import HJStep
from hjplug.spec import HJSpec

__all__ = ["HJResidualStep"]


class HJResidualStep(HJStep):
    """forward(skip, update): skip + h·update (the original add replayed exactly at h₀)."""

    hook_points: ClassVar[tuple[str, ...]] = ("state", "update")
    fixed_epsilon: ClassVar[float | None] = 0.0

    def __init__(self, spec: HJSpec, *, skip_first: bool, alpha: float = 1.0) -> None:
        super().__init__(spec)
        self.skip_first, self.alpha = skip_first, alpha
        h = spec.time_step
        self._h0 = float(h) if isinstance(h, int | float) else 1.0
        self._h = self._h0

    @property
    def time_step(self) -> float:
        return self._h

    @time_step.setter
    def time_step(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise InvalidArgumentError("time_step", "a finite number", value, where=self._spec.path)
        self._h = float(value)

    @property
    def spec(self) -> HJSpec:
        from dataclasses import replace

        return replace(super().spec, time_step=self._h)

    def forward(self, skip: Tensor, update: Tensor) -> Tensor:
        if self.observed:
            self._emit("state", skip)
            self._emit("update", update)
        if self._h == self._h0:  # the original add, operands in their original order
            a, b = (skip, update) if self.skip_first else (update, skip)
            if self.alpha == 1.0:
                return torch.add(a, b)
            return torch.add(a, b, alpha=self.alpha)
        return skip + (self._h / self._h0) * (self.alpha if self.skip_first else 1.0) * update
