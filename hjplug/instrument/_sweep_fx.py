"""Sweep driver for FX-converted models (HJModule): ε per HJAttentionStep, or per chosen head;
entropies from the "scores" hook point; the fixed-input probe rescales those logits
(z = z₀·ε₀/ε, the bias included), so replayed chains (ALiBi / fused bias) are swept too."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument._fx import _eps_vector
from hjplug.instrument._sweep_hf import resolve_heads
from hjplug.instrument.fixed_curve import FixedCurve, entropy_of_logits
from hjplug.instrument.sweep import Block, fold_inputs, fold_scan, run_model

__all__ = ["FXDriver"]

_WHERE = "hjplug.sweep"


class FXDriver:
    def __init__(self, model: nn.Module, layers: Any, heads: Any) -> None:
        from hjplug.instrument._fx import attention_steps
        from hjplug.instrument.context import fx_layers
        from hjplug.instrument.fx_deformation import step_heads

        self.model = model
        self.steps = attention_steps(model)
        self.chosen = fx_layers(self.steps, layers, _WHERE, model)
        self.heads = None
        if heads is not None:  # H (not B·H) for 3-D [B·H, S, d] layouts
            counts = [step_heads(self.steps[i][1])[1] for i in self.chosen]
            known = [n for n in counts if n is not None]
            if len(known) != len(counts):
                raise InvalidArgumentError("heads", "None: a chosen step's head count is not "
                                           "known statically", heads, where=_WHERE)
            self.heads = resolve_heads(heads, min(known), _WHERE)
        self.paths = [p for p, _ in self.steps]
        self.n_blocks = len(self.steps)
        self.max_heads = 1
        self.nheads = [1] * self.n_blocks
        self.notes: list[str] = []
        self.masks: list[Tensor | None] = []  # query-validity stack (track_attention_mask)
        self.real_rows: dict[int, Tensor | None] = {}  # step → real query rows [B, Sq]

    def heads_of(self, i: int) -> list[int]:
        if i not in self.chosen:
            return []
        return list(self.heads) if self.heads is not None else list(range(self.nheads[i]))

    def enter(self, stack: ExitStack) -> None:
        from hjplug.instrument._masks import track_attention_mask

        self.masks = track_attention_mask(self.model, stack)

    def run(self, inputs: Any, lam: float, nxt: float | None) -> Block:
        from hjplug.instrument.context import deform
        from hjplug.instrument.recorder import query_valid
        from hjplug.instrument.stats import logits_stats
        from hjplug.modules.attention_bias import is_removed

        got: dict[int, tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]] = {}

        def obs(i: int) -> Any:
            def fn(step: Any, point: str, z: Tensor) -> None:
                z4 = _heads4(step, z.detach())  # [B, H, Tq, Tk]
                H = z4.shape[1]
                if len(self.nheads) and self.nheads[i] < H:
                    self.nheads[i] = H
                    self.max_heads = max(self.max_heads, H)
                st = logits_stats(z4)
                eps_h = _eps_vector(step, H, z4).to(torch.float64).cpu()  # [H]
                probe = None
                if nxt is not None and i in self.chosen and bool((eps_h > 0).all()):
                    # the same inputs at λ_{s+1}: z = z₀·ε₀/ε, so z₁ = z·ε_h/ε′_h per head
                    e1 = eps_h.clone()
                    for h in self.heads_of(i):
                        e1[h] = e1[h] * nxt / lam  # the swept heads move to λ_{s+1}
                    ratio = (eps_h / e1).to(torch.float64).view(H, 1, 1)
                    zd = z4.double()
                    z1 = torch.where(is_removed(z4), zd, zd * ratio)  # removed atoms stay
                    probe = logits_stats(z1)["entropy"]
                got[i] = (st["entropy"], st["keys"], st["nan"], eps_h, probe)
                self.real_rows[i] = query_valid(self.masks, st["keys"])
            return fn

        with ExitStack() as stack:
            stack.enter_context(deform(self.model, lam, self.chosen, self.heads))
            for i, (_, step) in enumerate(self.steps):
                stack.callback(step.observe("scores", obs(i)).remove)
            run_model(self.model, inputs)
        return got

    def fixed_curve(self, inputs: Any, lam: list[float]) -> FixedCurve:
        """Entropies of the chosen steps at λ = 1 inputs, for every λ, from their logits z₀
        (the "scores" point; see fixed_curve.py)."""
        from hjplug.instrument.context import deform
        from hjplug.modules.attention_stats import removed_to_inf

        out: FixedCurve = {}

        def grab(i: int) -> Any:
            def fn(step: Any, point: str, z: Tensor) -> None:
                z4 = _heads4(step, removed_to_inf(z.detach()))  # [B, H, Tq, Tk]
                out[i] = entropy_of_logits(z4.to(torch.promote_types(z4.dtype, torch.float32)),
                                           lam)
            return fn

        with ExitStack() as stack:
            stack.enter_context(deform(self.model, 1.0, self.chosen, self.heads))
            for i in self.chosen:
                stack.callback(self.steps[i][1].observe("scores", grab(i)).remove)
            run_model(self.model, inputs)
        return out

    def folds(self, inputs: Any, lam: list[float], fold_head: tuple[int, int] | None,
              fold_queries: tuple[int, int] | None) -> tuple[Any, Any, str]:
        layer, head = fold_head if fold_head is not None else (self.chosen[0], 0)
        if not (isinstance(layer, int) and 0 <= layer < self.n_blocks):
            raise InvalidArgumentError("fold_head", f"(layer in [0, {self.n_blocks}), head)",
                                       fold_head, where=_WHERE)
        path, step = self.steps[layer]
        if step.deform_core is not None:
            raise HJPlugError(f"{_WHERE}: step {path} replays a reshaped / fused chain (no plain "
                              "q·kᵀ to interpolate); choose another fold_head layer.")
        cap: dict[str, Tensor] = {}

        def pre(m: nn.Module, args: tuple[Any, ...]) -> None:
            cap["q"], cap["k"] = args[0].detach(), args[1].detach()

        def obs(s: Any, point: str, z: Tensor) -> None:
            cap["z"] = z.detach()
        with ExitStack() as stack:
            stack.callback(step.register_forward_pre_hook(pre).remove)
            stack.callback(step.observe("scores", obs).remove)
            run_model(self.model, inputs)
        if "z" not in cap:
            raise HJPlugError(f"{_WHERE}: step {path} emitted no scores; no fold scan.")
        # the step's ε is in q_proj(x)'s units when the model pre-scaled q by s₀ (q_prescale)
        q = _heads4(step, cap["q"]) / float(getattr(step, "q_prescale", 1.0))  # [B, H, Tq, D]
        k = cap["k"] if step.mode == "sdpa" else cap["k"].transpose(-1, -2)
        k = _heads4(step, k)
        if k.shape[1] != q.shape[1]:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        if not 0 <= head < q.shape[1]:
            raise InvalidArgumentError("fold_head", f"(layer, head in [0, {q.shape[1]}))",
                                       fold_head, where=_WHERE)
        z = _heads4(step, cap["z"])
        K, qa, qb, ia, ib = fold_inputs(k[0, head], q[0, head], z[0, head] > float("-inf"),
                                        fold_queries)
        eps0 = float(step.identified_epsilon)
        scan = fold_scan(K, qa, qb, [v * eps0 for v in lam])
        src = (f"layers.{layer}.attn head {head} ({path}), batch 0, path q_{ia} → q_{ib}, "
               f"{K.shape[0]} key atoms in d = {K.shape[1]}, b = 0, ε = λ·{eps0:.4g}")
        return scan.folds, scan, src


def _heads4(step: Any, t: Tensor) -> Tensor:
    """A step tensor [..., H, T, ·] as [B, H, T, ·]; a 3-D [B·H, T, ·] one split into [B, H, T, ·]
    where the rule read H (`heads_per_batch`), so head h is head h of every batch element."""
    from hjplug.instrument._fx import _per_batch, _split

    t4 = t.reshape(-1, *t.shape[-3:])
    return _split(t4, _per_batch(step)) if t.dim() == 3 else t4  # type: ignore[return-value]
