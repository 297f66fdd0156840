"""HJLSEStep: a log-sum-exp / softmax readout (LM head, classifier, MoE router). Exact.

    logsumexp:    LSE_ε(z) = ε·log Σ_j exp(z_j/ε)        (ε = 0: max_j z_j)
    softmax:      π = softmax(z/ε)                        (ε = 0: uniform over the argmax)
    log_softmax:  log π = log_softmax(z/ε)                (ε = 0: 0 on the argmax, −∞ elsewhere)
ε is the temperature: 1 unless the logits were scaled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from hjplug.modules.base import HJStep, tropical_softmax
from hjplug.spec import HJSpec

__all__ = ["HJLSEStep"]


class HJLSEStep(HJStep):
    """forward(z): replays `target(z, *args)` at the identified ε; the ε-deformed readout otherwise.

    `scale` is the recorded pre-scaling of the logits (z ↦ z·scale, i.e. ε₀ = 1/scale); `outer`
    the recorded post-multiplication (ε·LSE(z/ε) layers).
    """

    hook_points: ClassVar[tuple[str, ...]] = ("logits", "output")

    def __init__(
        self, spec: HJSpec, *, op: str, target: Any, args: tuple[Any, ...], dim: int,
        pre: tuple[str, float] | None = None, post: tuple[str, float] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec)
        self.op, self.target, self.args, self.dim = op, target, tuple(args), dim
        self.kwargs = dict(kwargs or {})
        self.pre, self.post = pre, post

    @staticmethod
    def _apply(x: Tensor, how: tuple[str, float] | None) -> Tensor:
        if how is None:
            return x
        kind, c = how
        return x * c if kind == "mul" else x / c

    def forward(self, z: Tensor) -> Tensor:
        if self.at_identified and not self.observed:
            out = self.target(self._apply(z, self.pre), *self.args, **self.kwargs)
            return self._apply(out, self.post)
        eps = float(self._epsilon)  # type: ignore[arg-type]
        self._emit("logits", z)
        if self.op == "logsumexp":
            out = (eps * torch.logsumexp(z / eps, dim=self.dim) if eps > 0
                   else z.amax(dim=self.dim))
        elif eps > 0:
            fn = torch.softmax if self.op == "softmax" else torch.log_softmax
            out = fn(z.float() / eps, dim=self.dim).to(z.dtype)
        else:
            w = tropical_softmax(z.float(), dim=self.dim).to(z.dtype)
            out = w if self.op == "softmax" else torch.log(w)
        self._emit("output", out)
        return out
