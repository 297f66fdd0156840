"""HJLSEStep: a log-sum-exp / softmax readout (LM head, classifier, MoE router). Exact.

    logsumexp:    LSE_ε(z) = ε·log Σ_j exp(z_j/ε)        (ε = 0: max_j z_j)
    softmax:      π = softmax(z/ε)                        (ε = 0: uniform over the argmax)
    log_softmax:  log π = log_softmax(z/ε)                (ε = 0: 0 on the argmax, −∞ elsewhere)
ε is the temperature: 1 unless the logits were scaled.

The step replaces the graph from the unscaled logits z to the readout: the recorded pre-scaling
(z/ε₀) and, for logsumexp, an absorbed post-multiplication c. At ε₀ it replays those ops
exactly (also while observed); off ε₀ the logits are z/ε (the whole logit vector rescaled, as in
attention) and a logsumexp keeps its recorded outer gain κ = c/ε₀ (c = 1 when there is none):

    logsumexp at ε:  κ·LSE_ε(z) = (c/ε₀)·ε·log Σ_j exp(z_j/ε)   (κ = 1: ε·LSE(z/ε) layers)
keepdim and a requested output dtype (softmax(…, dtype=…)) are kept at every ε.
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
    def _rescale(x: Any, how: tuple[str, float] | None) -> Any:
        """x·c or x/c for how = ("mul" | "div", c); x unchanged for None."""
        if how is None:
            return x
        kind, c = how
        return x * c if kind == "mul" else x / c

    def _option(self, index: int, name: str, default: Any) -> Any:
        """An argument of the original op after z and dim: positional `index` or keyword."""
        return self.args[index] if len(self.args) > index else self.kwargs.get(name, default)

    def _out_dtype(self, z: Tensor) -> torch.dtype:
        """The original op's output dtype: softmax.int(…, dtype) / _softmax(…, half_to_float)."""
        if self.op == "logsumexp":
            return z.dtype
        dt = self._option(1, "dtype", None)
        if isinstance(dt, torch.dtype):
            return dt
        return torch.float32 if dt is True else z.dtype  # half_to_float

    def forward(self, z: Tensor) -> Tensor:
        if self.at_identified:  # the original ops, operands and order as recorded
            if self.observed:
                self._emit("logits", z)
            out = self.target(self._rescale(z, self.pre), *self.args, **self.kwargs)
            out = self._rescale(out, self.post)
            if self.observed:
                self._emit("output", out)
            return out
        eps = float(self._epsilon)  # type: ignore[arg-type]
        self._emit("logits", z)
        if self.op == "logsumexp":
            keep = bool(self._option(1, "keepdim", False))
            gain = float(self._rescale(1.0, self.post)) / float(self._eps0)  # type: ignore
            out = (eps * torch.logsumexp(z / eps, dim=self.dim, keepdim=keep) if eps > 0
                   else z.amax(dim=self.dim, keepdim=keep))
            if gain != 1.0:
                out = gain * out
        else:
            dtype = self._out_dtype(z)
            zc = z.to(torch.promote_types(dtype, torch.float32))
            if eps > 0:
                fn = torch.softmax if self.op == "softmax" else torch.log_softmax
                out = fn(zc / eps, dim=self.dim).to(dtype)
            else:
                w = tropical_softmax(zc, dim=self.dim)
                out = (w if self.op == "softmax" else torch.log(w)).to(dtype)
        self._emit("output", out)
        return out
