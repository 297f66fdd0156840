"""HJStep: the nn.Module every recognised block becomes. Carries its record and a settable ε."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from hjplug.errors import InvalidArgumentError
from hjplug.spec import HJSpec

__all__ = ["HJStep", "Observer"]

Observer = Callable[["HJStep", str, Tensor], None]


class _Handle:
    def __init__(self, registry: dict[int, tuple[str, Observer]], key: int) -> None:
        self._registry, self._key = registry, key

    def remove(self) -> None:
        self._registry.pop(self._key, None)


class HJStep(nn.Module):
    """Base of the HJ step modules.

    `spec` is the block's HJSpec with the *current* ε; `epsilon` is settable (validated): at the
    identified ε the step reproduces the original ops exactly, elsewhere it evaluates the ε-deformed
    step (ε = 0: the tropical / hard-max limit where `has_tropical_limit`). Hook points are named
    in `hook_points`; `observe(point, fn)` registers fn(step, point, tensor) and returns a handle
    with `.remove()`. With no observer registered nothing extra is computed.
    """

    hook_points: ClassVar[tuple[str, ...]] = ()
    has_tropical_limit: ClassVar[bool] = True
    fixed_epsilon: ClassVar[float | None] = None  # e.g. 0.0 for deterministic (inviscid) steps
    per_head: ClassVar[bool] = False  # epsilon may be one value per head (attention steps)

    def __init__(self, spec: HJSpec) -> None:
        super().__init__()
        self._spec = spec
        self._eps0 = spec.epsilon
        self._epsilon = spec.epsilon
        self._observers: dict[int, tuple[str, Observer]] = {}
        self._next_key = 0

    # --- record and ε -------------------------------------------------------------------
    @property
    def spec(self) -> HJSpec:
        return replace(self._spec, epsilon=self._epsilon)

    @property
    def identified_epsilon(self) -> float | tuple[float, ...] | None:
        return self._eps0

    @property
    def epsilon(self) -> float | tuple[float, ...] | None:
        return self._epsilon

    @epsilon.setter
    def epsilon(self, value: float | Sequence[float]) -> None:
        where = f"{type(self).__name__}({self._spec.path})"
        if self.per_head and isinstance(value, list | tuple):
            self._epsilon = self._per_head(value, where)
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0
        ):
            raise InvalidArgumentError("epsilon", "a finite number ≥ 0", value, where=where)
        value = float(value)
        if self.fixed_epsilon is not None and value != self.fixed_epsilon:
            raise InvalidArgumentError(
                "epsilon", f"{self.fixed_epsilon} (this step is deterministic: ℋ has no viscosity)",
                value, where=where,
            )
        if value == 0.0 and not self.has_tropical_limit:
            raise InvalidArgumentError(
                "epsilon", "> 0 (this block has no tropical limit)", value, where=where
            )
        self._epsilon = value

    def _per_head(self, values: Sequence[float], where: str) -> float | tuple[float, ...]:
        """One ε per head, each finite and > 0 (all equal: stored as one value; a hard-max head
        needs every head at 0 — a single ε = 0). With `heads_per_batch` = H (3-D [B·H, S, d]
        layouts, `heads` = B·H slices) H values are accepted, and a per-slice tuple with
        ε_{b·H+h} = ε_h is stored as its H values (tiled over the runtime batch by the step).
        A head count that is not an int (B·H of a dynamic capture, e.g. '2*s0') takes H values
        when H was read, and is refused otherwise (no count to check against)."""
        params = self._spec.hamiltonian.params
        heads, per = params.get("heads"), params.get("heads_per_batch")
        per = per if isinstance(per, int) and not isinstance(per, bool) and per > 0 else None
        if heads is not None and not isinstance(heads, int) and per is None:
            raise InvalidArgumentError(
                "epsilon", f"a single number: this step's head count is not known ('heads' = "
                f"{heads!r}, a dynamic size; see its notes)", values, where=where)
        heads = heads if isinstance(heads, int) and not isinstance(heads, bool) else None
        ok = all(not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
                 and v > 0 for v in values)
        vals = tuple(float(v) for v in values) if ok else ()
        tiled = per is not None and len(vals) % per == 0 and all(
            v == vals[i % per] for i, v in enumerate(vals))
        fits = len(vals) in (heads, per) if heads is not None else (per is None or tiled)
        if not vals or not fits:
            n = f"{per} " if per is not None else f"{heads} " if heads is not None else ""
            raise InvalidArgumentError("epsilon", f"one finite ε > 0 for each of the {n}heads "
                                       "(or a single number; 0 = hard max for all heads)",
                                       values, where=where)
        if tiled:
            vals = vals[:per]  # ε_{b·H+h} = ε_h: one ε per head
        return vals[0] if len(set(vals)) == 1 else vals

    @property
    def at_identified(self) -> bool:
        """True when ε is the identified one (the step then replays the original ops exactly)."""
        return self._epsilon == self._eps0

    def reset_epsilon(self) -> None:
        self._epsilon = self._eps0

    # --- hook points ----------------------------------------------------------------------
    def observe(self, point: str, fn: Observer) -> _Handle:
        if point not in self.hook_points:
            raise InvalidArgumentError(
                "point", f"one of {self.hook_points}", point, where=type(self).__name__
            )
        key = self._next_key
        self._next_key += 1
        self._observers[key] = (point, fn)
        return _Handle(self._observers, key)

    @property
    def observed(self) -> bool:
        return bool(self._observers)

    def _emit(self, point: str, value: Tensor) -> None:
        for name, fn in list(self._observers.values()):
            if name == point:
                fn(self, point, value)

    def extra_repr(self) -> str:
        s = self._spec
        return f"path={s.path!r}, kind={s.kind}, epsilon={self._epsilon}, {s.exactness}"


def tropical_softmax(logits: Tensor, dim: int = -1) -> Tensor:
    """ε → 0 limit of softmax(z/ε): uniform over the argmax set (ties split), 0 elsewhere."""
    top = logits.amax(dim=dim, keepdim=True)
    hit = (logits == top) & torch.isfinite(top)
    w = hit.to(logits.dtype)
    return w / w.sum(dim=dim, keepdim=True).clamp_min(1)
