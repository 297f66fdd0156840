"""Find the attention modules of a transformers model and build their block records (HJSpec).

Head h of an attention block reads as (paper-notes §4, exact for the weights π):

    u_h(x_i) = ε_h · log Σ_j exp((x_i·M_h·x_j + b_ij) / ε_h),   M_h = W_Q,h W_K,hᵀ,
    ε_h = λ_h / scaling  (λ_h = 1 undeformed; vanilla scaling = 1/√d_head ⇒ ε = √d_head),
    H_h(p) = ½ pᵀ Σ_h p  (anisotropic quadratic; Σ_h the Gibbs covariance of the atoms M_h x_j).

Soft-capped logits c·tanh(s/c) are not an LSE transform of the query: those heads are structural.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from torch import nn

from hjplug.integrations.huggingface.families import FAMILIES, GENERIC, Family
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

__all__ = ["AttentionBlock", "attention_blocks", "build_spec", "calls_interface",
           "deformed_spec", "module_heads"]

FORMULA = ("u_h(x_i) = ε_h·log Σ_j exp((x_i·M_h·x_j + b_ij)/ε_h), M_h = W_Q,h W_K,hᵀ; "
           "H_h(p) = ½ pᵀ Σ_h p (Σ_h = Cov_π(M_h x_j))")
TIME_STEP = "one Gibbs (Hopf–Cole) average per layer"

AttentionBlock = tuple[str, nn.Module, Family]


@functools.cache
def calls_interface(cls: type) -> bool:
    """True when `cls.forward` dispatches through transformers' AttentionInterface."""
    try:
        src = inspect.getsource(cls.forward)  # type: ignore[attr-defined]
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in src


_BY_CLASS: dict[str, Family] = {c: f for f in FAMILIES for c in f.attention}


def attention_blocks(model: nn.Module) -> Iterator[AttentionBlock]:
    """(path, module, family) of every module whose forward goes through AttentionInterface."""
    for path, mod in model.named_modules():
        cls: Any = type(mod)
        if calls_interface(cls) and cls.__name__ != "Module":
            yield path, mod, _BY_CLASS.get(cls.__name__, GENERIC)


def _first(obj: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        v = getattr(obj, n, None)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return v
    return None


def module_heads(mod: nn.Module) -> tuple[int, int, int]:
    """(query heads H, key/value heads Hk, head dim d) of an attention module."""
    cfg = getattr(mod, "config", None)
    heads = _first(mod, ("num_heads", "num_attention_heads", "n_heads", "n_head"))
    if heads is None and cfg is not None:
        heads = _first(cfg, ("num_attention_heads",))
    heads = int(heads or 1)
    groups = _first(mod, ("num_key_value_groups",))
    kv = heads // int(groups) if groups else int(
        _first(cfg, ("num_key_value_heads",)) or heads) if cfg is not None else heads
    hd = _first(mod, ("head_dim", "attention_head_size", "key_value_proj_dim"))
    if hd is None and cfg is not None:
        hidden = _first(cfg, ("hidden_size",))
        hd = hidden // heads if hidden else None
    return heads, kv, int(hd or 0)


def build_spec(path: str, mod: nn.Module, fam: Family) -> HJSpec:
    """The block record of one attention module at deformation λ = 1."""
    heads, kv, hd = module_heads(mod)
    scaling = getattr(mod, "scaling", None)
    if not isinstance(scaling, int | float):
        scaling = hd**-0.5 if hd else 1.0
    cfg = getattr(mod, "config", None)
    window = getattr(mod, "sliding_window", None) if hasattr(mod, "sliding_window") else (
        getattr(cfg, "sliding_window", None))
    softcap = getattr(mod, "attn_logit_softcapping", None)
    if softcap is None and fam.softcap and cfg is not None:
        softcap = getattr(cfg, fam.softcap, None)
    notes = [fam.notes] if fam.notes else []
    if softcap is not None:
        notes.append(f"soft-capped logits c·tanh(s/c), c = {softcap}: not an LSE transform of "
                     "the query, so the HJ reading of these heads is structural")
    params = {
        "metric": "M_h = W_Q,h W_K,hᵀ", "heads": heads, "kv_heads": kv, "head_dim": hd,
        "scaling": float(scaling), "bias": fam.bias, "positions": fam.positions,
        "window": window, "softcap": softcap, "family": fam.name,
        "causal": bool(getattr(mod, "is_causal", False)),
    }
    eps = 1.0 / float(scaling) if scaling else 0.0
    return HJSpec(
        path=path, kind=BlockKind.ATTENTION, hamiltonian=Hamiltonian(FORMULA, params),
        epsilon=tuple([eps] * heads), time_step=TIME_STEP,
        exactness=Exactness.STRUCTURAL if softcap is not None else Exactness.EXACT,
        evidence=("transformers.AttentionInterface['hjplug']", f"{type(mod).__name__}.forward",
                  f"scaling={float(scaling):.6g}", "AttentionMaskInterface['hjplug'] = sdpa_mask"),
        notes="; ".join(notes),
    )


def deformed_spec(spec: HJSpec, scale: tuple[float, ...] | None) -> HJSpec:
    """The record with ε_h → λ_h·ε_h (λ = None: unchanged)."""
    if scale is None or not isinstance(spec.epsilon, tuple):
        return spec
    eps = tuple(lam * e for lam, e in zip(scale, spec.epsilon, strict=True))
    return replace(spec, epsilon=eps)
