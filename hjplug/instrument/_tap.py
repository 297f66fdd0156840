"""Query/key access for Hugging Face attention calls (curvature, weights, sweeps, attribution).

The HF integration delivers per-head statistics through `record()`, but not q and k. Where a
statistic needs them (curvature ‖Cov_π(k)‖/ε, the full π, the sweep's fixed-input monotonicity
probe), `tap({module: fn})` wraps transformers' AttentionInterface entry "hjplug" *for the
duration of the context only*: the wrapper calls the registered function unchanged and then, for
tapped modules only, hands fn an `AttentionCall`. The entry is put back (identity) when the last
tap exits; untapped modules (other models, other contexts) see one dict lookup per call.
Re-registration inside a context (enable() of another model) is repaired on the next tap entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.integrations.huggingface.attention_math import (
    combine_bias,
    eager_attention,
    prescaled_query,
)

__all__ = ["AttentionCall", "repair", "tap"]

_NAME = "hjplug"
_LOCK = threading.RLock()
_TAPS: dict[nn.Module, list[Callable[[AttentionCall], None]]] = {}
_STATE: dict[str, Any] = {"original": None, "count": 0}


@dataclass(frozen=True)
class AttentionCall:
    """One attention call as the "hjplug" function saw it (inputs only; outputs untouched)."""

    module: nn.Module
    query: Tensor  # [B, H, Sq, D]
    key: Tensor  # [B, Hk, Sk, D]
    value: Tensor  # [B, Hk, Sk, Dv]
    mask: Tensor | None
    scaling: float | None
    is_causal: bool | None
    position_bias: Tensor | None
    softcap: float | None

    @property
    def scale(self) -> float:
        return self.query.shape[-1] ** -0.5 if self.scaling is None else float(self.scaling)

    def lam(self, override: Tensor | None = None) -> Tensor | None:
        """λ_h [H] fp64 (None = undeformed): the module's deformation, or `override`."""
        if override is not None:
            return override.to(torch.float64)
        st = getattr(self.module, "_hjplug", None)
        if st is None or st.scale is None:
            return None
        return torch.tensor(st.scale, dtype=torch.float64, device=self.query.device)

    def epsilon(self, lam: Tensor | None = None) -> Tensor:
        """ε_h = λ_h / scaling  [H] fp64."""
        H = self.query.shape[1]
        lv = torch.ones(H, dtype=torch.float64, device=self.query.device) if lam is None else lam
        return lv / self.scale

    def prepared(self) -> tuple[Tensor, Tensor, Tensor | None, bool]:
        """(key, value, bias, causal) with the integration's own masking rules."""
        q, k, v = self.query, self.key, self.value
        Sq = q.shape[2]
        causal = getattr(self.module, "is_causal", True) if self.is_causal is None else (
            self.is_causal)
        causal = bool(Sq > 1 and self.mask is None and causal)
        pb = self.position_bias
        if causal and k.shape[2] > Sq:
            k, v = k[:, :, :Sq], v[:, :, :Sq]
            pb = None if pb is None else pb[..., :Sq]
        return k, v, combine_bias(self.mask, pb, q.dtype), causal

    def keys_per_head(self) -> Tensor:
        """k_j for every query head (grouped-query heads expanded): [B, H, Sk, D]."""
        k, _, _, _ = self.prepared()
        B, H = self.query.shape[:2]
        Hk, Sk, D = k.shape[1], k.shape[2], k.shape[3]
        return k[:, :, None].expand(B, Hk, H // Hk, Sk, D).reshape(B, H, Sk, D)

    def gibbs(self, lam: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(π [B,H,Sq,Sk], lse [B,H,Sq], entropy [B,H,Sq], keys [B,H,Sq]) by the readable eager
        path of the integration (matmul / softmax), at the module's λ or at `lam` [H]."""
        k, v, bias, causal = self.prepared()
        lv = self.lam(lam)
        _, lse, ent, keys, p, _ = eager_attention(self.query, k, v, bias, self.scale, causal,
                                                  lv, self.softcap, 0.0)
        return p, lse, ent, keys


def _wrapper(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
             attention_mask: Tensor | None, dropout: float = 0.0, scaling: float | None = None,
             is_causal: bool | None = None, position_bias: Tensor | None = None,
             softcap: float | None = None, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
    result = _STATE["original"](module, query, key, value, attention_mask, dropout=dropout,
                                scaling=scaling, is_causal=is_causal, position_bias=position_bias,
                                softcap=softcap, **kwargs)
    fns = _TAPS.get(module)
    if fns:
        q, s = query.detach(), scaling
        s0 = prescaled_query(module, scaling)
        if s0 is not None:  # queries the module pre-scaled by s₀: the taps see q/s₀ at s₀
            q, s = q / s0, s0  # (same logits; ε₀ = 1/s₀ and atoms as in the block record)
        call = AttentionCall(module, q, key.detach(), value.detach(), attention_mask, s,
                             is_causal, position_bias, softcap)
        with torch.no_grad():
            for fn in list(fns):
                fn(call)
    return result  # type: ignore[no-any-return]


def _install() -> None:
    from transformers import AttentionInterface

    from hjplug.integrations.huggingface import register

    mapping = AttentionInterface._global_mapping
    if _NAME not in mapping:
        register()
    if mapping[_NAME] is not _wrapper:
        _STATE["original"] = mapping[_NAME]
        mapping[_NAME] = _wrapper


def _uninstall() -> None:
    from transformers import AttentionInterface

    mapping = AttentionInterface._global_mapping
    if mapping.get(_NAME) is _wrapper:
        mapping[_NAME] = _STATE["original"]
    _STATE["original"] = None


def repair() -> None:
    """Re-install the wrapper while taps are active (after a register() replaced it)."""
    with _LOCK:
        if _STATE["count"] > 0:
            _install()


@contextmanager
def tap(fns: Mapping[nn.Module, Callable[[AttentionCall], None]]) -> Iterator[None]:
    """Hand fn an AttentionCall after every "hjplug" attention call of its module (context)."""
    with _LOCK:
        _install()
        _STATE["count"] += 1
        for mod, fn in fns.items():
            _TAPS.setdefault(mod, []).append(fn)
    try:
        yield
    finally:
        with _LOCK:
            for mod, fn in fns.items():
                lst = _TAPS.get(mod, [])
                for j in range(len(lst) - 1, -1, -1):
                    if lst[j] is fn:
                        del lst[j]
                        break
                if not lst:
                    _TAPS.pop(mod, None)
            _STATE["count"] -= 1
            if _STATE["count"] == 0:
                _uninstall()
