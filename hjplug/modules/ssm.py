"""HJSSMStep: a state-space / linear-recurrence block x' = Ā x + B̄ u, Ā = exp(Δ A).

Control Hamiltonian ℋ = p·(A x + B u), deterministic (ε = 0); time step Δ, in Mamba
Δ = softplus(·) = LSE₁(·, 0); the zero-order hold Ā = exp(ΔA) is exact, the rest structural.
The step evaluates the block's Δ (op "delta") and its decay / discretisation exponentials
("decay", "zoh"), replaying the original ops; `delta_epsilon` = λ deforms Δ = softplus_{λ·ε_Δ}
(1: the block's own Δ, ε_Δ = 1/β of its softplus; 0: ReLU).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from hjplug.modules.activation import deformed_activation
from hjplug.modules.base import HJStep
from hjplug.spec import HJSpec

__all__ = ["HJSSMStep"]


class HJSSMStep(HJStep):
    """forward(x, role=..., target=..., args=...): one Δ / exp evaluation of the SSM block."""

    hook_points: ClassVar[tuple[str, ...]] = ("delta", "decay")
    fixed_epsilon: ClassVar[float | None] = 0.0

    def __init__(self, spec: HJSpec, *, targets: dict[str, Any]) -> None:
        super().__init__(spec)
        self.targets = dict(targets)
        self.delta_epsilon = 1.0

    def forward(self, x: Tensor, *args: Any, role: str) -> Tensor:
        if role == "delta" and self.delta_epsilon != 1.0:
            beta = args[0] if args else 1.0  # aten.softplus(x, beta, threshold): ε_Δ = 1/β
            out = deformed_activation("softplus", x, self.delta_epsilon / float(beta))
        else:
            out = self.targets[role](x, *args)
        if self.observed:
            self._emit("delta" if role == "delta" else "decay", out)
        return out
