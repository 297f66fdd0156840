"""A trainable LSE layer: f_ε(x) = ε·log Σ_j exp((W_j·x + b_j)/ε), the Hopf–Cole solution.

Parameters W [N, d] and b [N]; ε > 0 is a fixed (non-trained) deviation/viscosity. Every
quantity is computed by `hjplug.math` (the specification):

    forward  f_ε(x) = LSE_ε(Wx + b)                    [..., d] → [...]
    gibbs    π(x)   = softmax((Wx + b)/ε)               [..., N]
    entropy  H(π(x))                                    [...]
    hessian  ∇²f    = Cov_π(W)/ε                        [..., d, d]  (‖·‖₂ ≤ max_j ‖W_j‖²/ε)
    atoms    y_j = 2tΣW_j,  g_j = −b_j − tW_jᵀΣW_j      (gauge t > 0, metric Σ, default I)

so that f_ε(x) + u_ε(x, t) = xᵀΣ⁻¹x/(4t) with u_ε the atomic Hopf–Cole solution of (y, g).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hjplug import math as hm
from hjplug.errors import InvalidArgumentError

__all__ = ["LSELayer"]


class LSELayer(nn.Module):
    """LSE layer with N atoms in d dimensions at deformation ε (softmax temperature)."""

    def __init__(
        self,
        in_features: int,
        n_atoms: int,
        eps: float = 1.0,
        *,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        where = "hjplug.layers.LSELayer"
        for name, value in (("in_features", in_features), ("n_atoms", n_atoms)):
            if not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(name, "an integer ≥ 1", value, where=where)
        if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
            raise InvalidArgumentError("eps", "a finite number > 0", eps, where=where)
        bound = 1.0 / math.sqrt(in_features)
        w = (torch.rand(n_atoms, in_features, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(n_atoms, generator=generator, dtype=dtype) * 2 - 1) * bound
        self.W = nn.Parameter(w)  # [N, d]
        self.b = nn.Parameter(b)  # [N]
        self.eps = float(eps)

    @classmethod
    def from_atoms(
        cls, y: Tensor, g: Tensor, t: float = 1.0, eps: float = 1.0,
        metric: Tensor | None = None,
    ) -> LSELayer:
        """The layer with atoms (y [N, d], g [N]) at gauge t: W = Σ⁻¹y/(2t), b = −g − |y|²/(4t)."""
        W, b = hm.lse_from_atoms(y, g, t, metric)
        layer = cls(y.shape[-1], y.shape[-2], eps, dtype=y.dtype)
        with torch.no_grad():
            layer.W.copy_(W)
            layer.b.copy_(b)
        return layer

    @property
    def in_features(self) -> int:
        return self.W.shape[1]

    @property
    def n_atoms(self) -> int:
        return self.W.shape[0]

    def logits(self, x: Tensor) -> Tensor:
        """z = Wx + b.  [..., d] → [..., N]"""
        return hm.logits(x, self.W, self.b)

    def forward(self, x: Tensor) -> Tensor:
        """f_ε(x) = LSE_ε(Wx + b).  [..., d] → [...]"""
        return hm.lse(self.logits(x), self.eps)

    def gibbs(self, x: Tensor, eps: float | None = None) -> Tensor:
        """Attribution weights π(x) = softmax((Wx + b)/ε).  [..., N]"""
        return hm.gibbs(self.logits(x), self.eps if eps is None else eps)

    def entropy(self, x: Tensor, eps: float | None = None) -> Tensor:
        """Attribution entropy H(π(x)) ∈ [0, log N].  [...]"""
        return hm.entropy(self.logits(x), self.eps if eps is None else eps)

    def hessian(self, x: Tensor) -> Tensor:
        """∇²_x f_ε = Cov_π(W)/ε.  [..., d, d]"""
        return hm.hessian_lse(x, self.W, self.b, self.eps)

    def hessian_bound(self, tight: bool = False) -> Tensor:
        """max_j ‖W_j‖²/ε (or diam({W_j})²/(4ε) with tight=True): bounds ‖∇²f‖₂.  []"""
        return hm.hessian_bound(self.W, self.eps, tight=tight)

    def atoms(self, t: float = 1.0, metric: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Hopf–Cole atoms (y [N, d], g [N]) at gauge t: y_j = 2tΣW_j, g_j = −b_j − tW_jᵀΣW_j."""
        return hm.atoms_from_lse(self.W, self.b, t, metric)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_atoms={self.n_atoms}, eps={self.eps:g}"
