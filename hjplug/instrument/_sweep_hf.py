"""Sweep driver for Hugging Face models: per-head deformation through the integration's deform,
entropies through record (kernel path), fixed-input probes and fold inputs through _tap."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument.fixed_curve import FixedCurve, entropy_of_logits, entropy_of_qk
from hjplug.instrument.sweep import Block, fold_inputs, fold_scan, run_model

__all__ = ["HFDriver", "resolve_heads", "resolve_layers"]

_WHERE = "hjplug.sweep"


def resolve_layers(layers: Sequence[int | str] | int | str | None, paths: list[str],
                   where: str = _WHERE) -> list[int]:
    """Indices into the attention blocks (ints, negative allowed, or module paths)."""
    n = len(paths)
    if layers is None:
        return list(range(n))
    items = [layers] if isinstance(layers, int | str) else list(layers)
    out = []
    for x in items:
        if isinstance(x, str) and x in paths:
            out.append(paths.index(x))
        elif isinstance(x, int) and not isinstance(x, bool) and -n <= x < n:
            out.append(x % n)
        else:
            raise InvalidArgumentError(
                "layers", f"attention block indices in [0, {n}) or module paths "
                f"({', '.join(paths[:2])}, ...)", x, where=where)
    if not out:
        raise InvalidArgumentError("layers", "at least one layer", layers, where=where)
    return list(dict.fromkeys(out))


def resolve_heads(heads: Sequence[int] | int | None, n_heads: int, where: str = _WHERE
                  ) -> tuple[int, ...] | None:
    if heads is None:
        return None
    items = [heads] if isinstance(heads, int) else list(heads)
    if not items or any(isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < n_heads
                        for h in items):
        raise InvalidArgumentError("heads", f"head indices in [0, {n_heads})", heads,
                                   where=where)
    return tuple(dict.fromkeys(items))


class HFDriver:
    def __init__(self, model: nn.Module, layers: Any, heads: Any) -> None:
        from hjplug.integrations.huggingface.blocks import attention_blocks, module_heads

        self.model = model
        self.blocks = list(attention_blocks(model))
        if not self.blocks:
            raise HJPlugError(f"{_WHERE}: {type(model).__name__} has no attention module that "
                              "goes through transformers' AttentionInterface.")
        self.paths = [p for p, _, _ in self.blocks]
        self.n_blocks = len(self.blocks)
        self.nheads = [module_heads(m)[0] for _, m, _ in self.blocks]
        self.max_heads = max(self.nheads)
        self.chosen = resolve_layers(layers, self.paths)
        self.heads = resolve_heads(heads, min(self.nheads[i] for i in self.chosen))
        self.notes: list[str] = []
        self.masks: list[Tensor | None] = []  # query-validity stack (track_attention_mask)
        self.real_rows: dict[int, Tensor | None] = {}  # block → real query rows [B, Sq]

    def heads_of(self, i: int) -> list[int]:
        if i not in self.chosen:
            return []
        return list(self.heads) if self.heads is not None else list(range(self.nheads[i]))

    def enter(self, stack: ExitStack) -> None:
        from hjplug.instrument._hf import ensure_enabled
        from hjplug.instrument._masks import track_attention_mask

        ensure_enabled(self.model, stack)
        self.masks = track_attention_mask(self.model, stack)

    def run(self, inputs: Any, lam: float, nxt: float | None) -> Block:
        from hjplug.instrument._hf import nan_rows
        from hjplug.instrument._tap import tap
        from hjplug.instrument.recorder import query_valid
        from hjplug.integrations.huggingface import deform, record

        got: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        probes: dict[int, Tensor] = {}

        def cb(st: Any) -> None:
            bad = nan_rows(st.lse, st.entropy, st.keys)
            got[st.index] = (st.entropy, st.keys, bad, st.epsilon)
            self.real_rows[st.index] = query_valid(self.masks, st.keys)

        def probe(i: int, lam1: float) -> Any:
            def fn(call: Any) -> None:
                H = call.query.shape[1]
                cur = call.lam()
                new = torch.ones(H, dtype=torch.float64) if cur is None else cur.clone()
                for h in self.heads_of(i):
                    new[h] = lam1
                probes[i] = call.gibbs(new)[2]  # H(π) at λ_{s+1}, same q, k  [B, H, Sq]
            return fn

        with ExitStack() as st:
            st.enter_context(deform(self.model, lam, self.chosen, self.heads))
            st.enter_context(record(self.model, cb))
            if nxt is not None:
                st.enter_context(tap({self.blocks[i][1]: probe(i, nxt) for i in self.chosen}))
            run_model(self.model, inputs)
        return {i: (*v, probes.get(i)) for i, v in got.items()}

    def fixed_curve(self, inputs: Any, lam: list[float]) -> FixedCurve:
        """Entropies of the chosen blocks at λ = 1 inputs, for every λ (see fixed_curve.py):
        the q·kᵀ form when a call has no mask, bias or soft-cap, else its logits z₀."""
        from hjplug.instrument._tap import tap
        from hjplug.integrations.huggingface import deform
        from hjplug.integrations.huggingface.attention_math import attention_logits

        out: FixedCurve = {}

        def grab(i: int) -> Any:
            def fn(call: Any) -> None:
                k, _, bias, causal = call.prepared()
                if bias is None and call.softcap is None:
                    out[i] = entropy_of_qk(call.query, k, call.scale, causal, lam)
                else:
                    z0 = attention_logits(call.query, k, bias, call.scale, causal, call.softcap)
                    out[i] = entropy_of_logits(z0, lam)
            return fn

        with ExitStack() as st:
            st.enter_context(deform(self.model, 1.0, self.chosen, self.heads))
            st.enter_context(tap({self.blocks[i][1]: grab(i) for i in self.chosen}))
            run_model(self.model, inputs)
        return out

    def folds(self, inputs: Any, lam: list[float], fold_head: tuple[int, int] | None,
              fold_queries: tuple[int, int] | None) -> tuple[Any, Any, str]:
        from hjplug.instrument._hf import visible_keys
        from hjplug.instrument._tap import tap

        layer, head = fold_head if fold_head is not None else (
            self.chosen[0], self.heads[0] if self.heads else 0)
        if not (isinstance(layer, int) and 0 <= layer < self.n_blocks):
            raise InvalidArgumentError("fold_head", f"(layer in [0, {self.n_blocks}), head)",
                                       fold_head, where=_WHERE)
        if not (isinstance(head, int) and 0 <= head < self.nheads[layer]):
            raise InvalidArgumentError("fold_head", f"(layer, head in [0, "
                                       f"{self.nheads[layer]}))", fold_head, where=_WHERE)
        cap: dict[str, Any] = {}

        def fn(call: Any) -> None:
            B, H, Sq, _ = call.query.shape
            keys = call.keys_per_head()
            cap["k"], cap["q"] = keys[0, head], call.query[0, head]
            cap["vis"] = visible_keys(call).expand(B, H, Sq, keys.shape[2])[0, head]
            cap["eps"] = float(call.epsilon(None)[head])
            cap["bias"] = call.position_bias is not None or (
                call.mask is not None and call.mask.dtype != torch.bool)

        with tap({self.blocks[layer][1]: fn}):
            run_model(self.model, inputs)
        if "k" not in cap:
            raise HJPlugError(f"{_WHERE}: block {self.paths[layer]} was not called.")
        K, qa, qb, ia, ib = fold_inputs(cap["k"], cap["q"], cap["vis"], fold_queries)
        scan = fold_scan(K, qa, qb, [v * cap["eps"] for v in lam])
        src = (f"layers.{layer}.attn head {head} ({self.paths[layer]}), batch 0, path q_{ia} → "
               f"q_{ib}, {K.shape[0]} key atoms in d = {K.shape[1]}, b = 0, "
               f"ε = λ·{cap['eps']:.4g}")
        if cap["bias"]:
            src += " (finite additive biases of this head are not part of the atoms)"
        return scan.folds, scan, src
