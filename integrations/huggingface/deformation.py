"""Per-head ε deformation of an enabled model: ε_h → λ·ε_h on chosen layers and heads.

    z_ij = s_ij / λ_h,   π_i = softmax(z_i),   ε_h = λ_h / scaling
    λ → 0: π_i → uniform over argmax_j s_ij (tropical / hard-max attention; one-hot without ties)
    ∂H(π_i)/∂λ = Var_π(s_i)/λ³ ≥ 0: entropy is non-decreasing in λ

`deform(model, λ)` applies at once and stays (persistent setting); used as a context manager,
`with deform(model, λ): ...` restores the exact previous λ of every head on exit (also on error).
λ is absolute, relative to the undeformed model: deform(model, 1.0) undoes a persistent setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from torch import Tensor, nn

from hjplug.errors import InvalidArgumentError
from hjplug.integrations.huggingface.blocks import attention_blocks, deformed_spec
from hjplug.integrations.huggingface.records import ModuleState
from hjplug.integrations.huggingface.switch import states

__all__ = ["Deformation", "deform"]

_WHERE = "hjplug.integrations.huggingface.deform"


@dataclass(frozen=True)
class Deformation:
    """Handle of one deform() call: which blocks changed and what they had before."""

    blocks: tuple[tuple[nn.Module, ModuleState, tuple[float, ...] | None], ...]
    scale: tuple[float, ...]

    def restore(self) -> None:
        """Put back the λ every touched head had before this call."""
        for mod, st, prev in reversed(self.blocks):
            _set(mod, st, prev)

    def __enter__(self) -> Deformation:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()


def _set(mod: nn.Module, st: ModuleState, scale: tuple[float, ...] | None) -> None:
    if scale is not None and all(s == 1.0 for s in scale):
        scale = None  # undeformed: the fast path runs again
    st.scale = scale
    object.__setattr__(mod, "hj_spec", deformed_spec(st.spec, scale))


def _scales(scale: float | Sequence[float], n: int) -> tuple[float, ...]:
    if isinstance(scale, int | float):
        vals = [scale]
    elif isinstance(scale, Sequence) and not isinstance(scale, str | bytes):
        vals = list(scale)
    else:
        vals = [scale]  # refused below
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
             and v >= 0 for v in vals)
    if not ok or (len(vals) != 1 and len(vals) != n):
        raise InvalidArgumentError(
            "scale", f"a finite λ ≥ 0 (0 = tropical), or {n} such values (one per chosen head)",
            scale, where=_WHERE)
    return tuple(float(v) for v in vals) * (n if len(vals) == 1 else 1)


def deform(model: nn.Module, scale: float | Sequence[float],
           layers: Sequence[int | str] | int | str | None = None,
           heads: Sequence[int] | int | None = None) -> Deformation:
    """Set ε_h → λ·ε_h on `layers` (indices into specs(model), or module paths; None = all)
    and `heads` (query-head indices; None = all). Persistent; a context manager restores."""
    if isinstance(scale, Tensor) and scale.dim() <= 1:  # one λ (0-d) or one per head (1-D)
        scale = float(scale) if scale.dim() == 0 else scale.detach().cpu().tolist()
    sts = states(model, "deform")
    mods = [m for _, m, _ in attention_blocks(model)]
    paths = [st.path for st in sts]
    chosen = range(len(sts)) if layers is None else [
        _layer(x, paths) for x in ([layers] if isinstance(layers, int | str) else layers)]
    plan: list[tuple[nn.Module, ModuleState, tuple[float, ...]]] = []
    for i in dict.fromkeys(chosen):  # validate everything before changing anything
        st = sts[i]
        hs = list(range(st.heads)) if heads is None else (
            [heads] if isinstance(heads, int) else list(heads))
        if not hs or any(not isinstance(h, int) or not 0 <= h < st.heads for h in hs):
            raise InvalidArgumentError(
                "heads", f"head indices in [0, {st.heads}) for block {st.path}", heads,
                where=_WHERE)
        new = list(st.scale or (1.0,) * st.heads)
        for h, v in zip(hs, _scales(scale, len(hs)), strict=True):
            new[h] = v
        plan.append((mods[i], st, tuple(new)))
    handle = Deformation(tuple((m, st, st.scale) for m, st, _ in plan),
                         _scales(scale, 1) if isinstance(scale, int | float)
                         else tuple(float(v) for v in scale))
    for mod, st, new_scale in plan:
        _set(mod, st, new_scale)
    return handle


def _layer(x: int | str, paths: list[str]) -> int:
    if isinstance(x, str) and x in paths:
        return paths.index(x)
    if isinstance(x, int) and not isinstance(x, bool) and -len(paths) <= x < len(paths):
        return x % len(paths)
    raise InvalidArgumentError(
        "layers", f"indices in [0, {len(paths)}) into specs(model), or module paths "
        f"({', '.join(paths[:3])}, ...)", x, where=_WHERE)
