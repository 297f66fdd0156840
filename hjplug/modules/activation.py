"""HJActivationStep: activations that are exact 1- or 2-atom LSE / Gibbs readings (ε = 1).

    softplus_ε(z) = ε·log(1 + e^{z/ε}) = LSE_ε(z, 0)   → ReLU at ε = 0 (tropical limit)
    sigmoid_ε(z)  = π₁ of {z, 0} at ε = σ(z/ε)          → Heaviside at ε = 0 (½ at 0)
    tanh_ε(z)     = π₊ − π₋ of {z, −z} = tanh(z/ε)      → sign at ε = 0
    relu(z)       = the tropical limit itself (ε₀ = 0); ε > 0 smooths it into softplus_ε
At the identified ε (softplus with β: ε₀ = 1/β) the original op is replayed, observed or not.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from hjplug.modules.base import HJStep
from hjplug.spec import HJSpec

__all__ = ["HJActivationStep", "deformed_activation"]


def deformed_activation(op: str, z: Tensor, eps: float) -> Tensor:
    """The ε-family of `op` ("softplus", "sigmoid", "tanh", "relu") evaluated at ε ≥ 0."""
    if eps == 0:
        if op in ("softplus", "relu"):
            return torch.relu(z)
        if op == "sigmoid":
            return torch.heaviside(z, torch.full_like(z, 0.5))
        return torch.sign(z)
    if op in ("softplus", "relu"):
        return eps * F.softplus(z / eps)
    if op == "sigmoid":
        return torch.sigmoid(z / eps)
    return torch.tanh(z / eps)


class HJActivationStep(HJStep):
    """forward(z): the original op (`target(z, *args)`) at ε₀, `deformed_activation` otherwise."""

    hook_points: ClassVar[tuple[str, ...]] = ("input", "output")

    def __init__(
        self, spec: HJSpec, *, op: str, target: Any, args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec)
        self.op, self.target, self.args, self.kwargs = op, target, tuple(args), dict(kwargs or {})

    def forward(self, z: Tensor) -> Tensor:
        if self.at_identified and not self.observed:
            return self.target(z, *self.args, **self.kwargs)
        self._emit("input", z)
        if self.at_identified:  # observed: still the original op (e.g. softplus's threshold)
            out = self.target(z, *self.args, **self.kwargs)
        else:
            out = deformed_activation(self.op, z, float(self._epsilon))  # type: ignore[arg-type]
        self._emit("output", out)
        return out
