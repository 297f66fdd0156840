"""`hjplug.attribute`: the Gibbs weights π of one attention head (over keys) or of an LSE layer
(over atoms) — the closed-form influence of each key / atom on the HJ value (paper-notes §1):

    f_i = ε·log Σ_j exp((W_j·x_i + b_j)/ε),   ∂f_i/∂b_j = π_ij = softmax_j((W_j·x_i + b_j)/ε)

For a head, x_i = q_i, W_j = k_j, ε = ε_h and b_j the mask / position bias in ε units; masked
keys are removed atoms (π = 0). Every row with a visible key and finite weights must sum to 1
(|Σ_j π_ij − 1| ≤ 1e-5 in fp32, checked; an HJPlugError otherwise); NaN rows are flagged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument.records import Attribution

__all__ = ["attribute"]

_WHERE = "hjplug.attribute"
SUM_TOL = 1e-5


def _idx(name: str, value: Any, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -n <= value < n:
        raise InvalidArgumentError(name, f"{what} in [0, {n})", value, where=_WHERE)
    return value % n


def _finish(p: Tensor, value: Tensor, keys: Tensor, eps: float, topk: int, source: str
            ) -> Attribution:
    """Check Σπ = 1 on the rows that have a visible key and finite weights; take the top-k."""
    nan = torch.isnan(p).any(-1) | torch.isnan(value)  # [R]
    rows = (keys > 0) & ~nan
    sums = p.double().sum(-1)
    err = float((sums[rows] - 1).abs().max()) if bool(rows.any()) else 0.0
    tol = SUM_TOL if p.dtype != torch.float64 else 1e-12
    if err > tol:
        raise HJPlugError(f"{_WHERE}: Gibbs weights of {source} do not sum to 1 (max |Σπ − 1| = "
                          f"{err:.3g} > {tol:g}); this is a bug — please report it.")
    kk = min(topk, p.shape[-1])
    tw, ti = p.nan_to_num(0.0).topk(kk, dim=-1)
    ti = torch.where(tw > 0, ti, torch.full_like(ti, -1))
    return Attribution(p, tw, ti, value, keys, nan, eps, err, source)


def attribute(model: nn.Module | tuple[Tensor, Tensor], inputs: Any = None,
              layer: int | None = None, head: int | None = None, topk: int = 10, *,
              batch: int = 0, query: int | None = None, eps: float = 1.0) -> Attribution:
    """π over keys of `head` in attention block `layer` (batch row `batch`; all queries, or one),
    or — with `model = (W [N, d], b [N])` and `inputs = x [M, d]` — π over the atoms of the
    LSE layer at viscosity `eps`. Returns an Attribution (weights [R, N], value [R], top-k)."""
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise InvalidArgumentError("topk", "an int ≥ 1", topk, where=_WHERE)
    if isinstance(model, tuple):
        return _lse_layer(model, inputs, eps, topk)
    from hjplug.instrument._fx import is_fx
    from hjplug.instrument._hf import is_hf

    if layer is None or head is None:
        raise InvalidArgumentError("layer/head", "both given for a model (attention block index "
                                   "and head index)", (layer, head), where=_WHERE)
    from hjplug.instrument.sweep import check_inputs

    check_inputs(inputs, _WHERE)
    if is_hf(model):
        p, lse, keys, eps_h, src = _hf(model, inputs, layer, head, batch)
    elif is_fx(model):
        p, lse, keys, eps_h, src = _fx(model, inputs, layer, head, batch)
    else:
        raise InvalidArgumentError("model", "a transformers model, an hjplug.convert result or "
                                   "(W, b)", type(model).__name__, where=_WHERE)
    value = eps_h * lse
    if query is not None:
        q = _idx("query", query, p.shape[0], "a query index")
        p, value, keys = p[q:q + 1], value[q:q + 1], keys[q:q + 1]
        src += f", query {q}"
    return _finish(p, value, keys, eps_h, topk, src)


def _lse_layer(wb: tuple[Tensor, Tensor], x: Any, eps: float, topk: int) -> Attribution:
    if len(wb) != 2 or not all(isinstance(t, Tensor) for t in wb):
        raise InvalidArgumentError("model", "(W [N, d], b [N]) tensors", wb, where=_WHERE)
    W, b = wb
    if not isinstance(x, Tensor) or x.dim() not in (1, 2) or x.shape[-1] != W.shape[-1] or (
            W.dim() != 2 or b.shape != (W.shape[0],)):
        raise InvalidArgumentError("inputs", f"x [M, d={W.shape[-1]}] (or [d]) with W [N, d], "
                                   "b [N]", x, where=_WHERE)
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
        raise InvalidArgumentError("eps", "a finite ε > 0", eps, where=_WHERE)
    from hjplug import math as hm

    x2 = x.reshape(-1, W.shape[-1])
    z = x2 @ W.T + b  # [M, N] logits; π = softmax(z/ε), shifted before dividing (no overflow)
    keys = (z > float("-inf")).sum(-1)  # removed atoms: b_j = −inf (not z/ε overflowing)
    return _finish(hm.gibbs(z, eps), hm.lse(z, eps), keys, float(eps), topk,
                   f"LSE layer with {W.shape[0]} atoms in d = {W.shape[1]}, ε = {eps:g}")


def _hf(model: nn.Module, inputs: Any, layer: int, head: int, batch: int
        ) -> tuple[Tensor, Tensor, Tensor, float, str]:
    from contextlib import ExitStack

    from hjplug.instrument._hf import ensure_enabled
    from hjplug.instrument._tap import tap
    from hjplug.instrument.sweep import run_model
    from hjplug.integrations.huggingface.blocks import attention_blocks, module_heads

    blocks = list(attention_blocks(model))
    li = _idx("layer", layer, len(blocks), "an attention block index")
    path, mod, _ = blocks[li]
    hi = _idx("head", head, module_heads(mod)[0], f"a head index of {path}")
    cap: dict[str, Any] = {}

    def fn(call: Any) -> None:
        p, lse, _, keys = call.gibbs()
        cap.update(p=p, lse=lse, keys=keys, eps=call.epsilon(call.lam()))
    with ExitStack() as stack:
        ensure_enabled(model, stack)
        stack.enter_context(tap({mod: fn}))
        run_model(model, inputs)
    if "p" not in cap:
        raise HJPlugError(f"{_WHERE}: block {path} was not called by this forward.")
    bi = _idx("batch", batch, cap["p"].shape[0], "a batch row")
    src = f"layers.{li}.attn head {hi} ({path}), batch {bi}"
    return (cap["p"][bi, hi], cap["lse"][bi, hi], cap["keys"][bi, hi], float(cap["eps"][hi]), src)


def _fx(model: nn.Module, inputs: Any, layer: int, head: int, batch: int
        ) -> tuple[Tensor, Tensor, Tensor, float, str]:
    from hjplug.instrument._fx import _softmax, attention_steps
    from hjplug.instrument.sweep import run_model

    steps = attention_steps(model)
    li = _idx("layer", layer, len(steps), "an attention block index")
    path, step = steps[li]
    cap: dict[str, Tensor] = {}

    def obs(s: Any, point: str, z: Tensor) -> None:
        cap["z"] = z.detach()
    handle = step.observe("scores", obs)
    try:
        run_model(model, inputs)
    finally:
        handle.remove()
    if "z" not in cap:
        raise HJPlugError(f"{_WHERE}: step {path} emitted no scores.")
    z = cap["z"].reshape(-1, *cap["z"].shape[-3:]).float()  # [B, H, Tq, Tk]
    hi = _idx("head", head, z.shape[1], f"a head index of {path}")
    bi = _idx("batch", batch, z.shape[0], "a batch row")
    zz = z[bi, hi]
    keys = (zz > float("-inf")).sum(-1)
    lse = torch.logsumexp(zz.masked_fill(keys.unsqueeze(-1) == 0, 0.0), dim=-1)
    lse = lse.masked_fill(keys == 0, float("-inf"))
    e = step.epsilon
    eps = float(e[hi]) if isinstance(e, tuple) else float(e)  # one ε per head, or per block
    return _softmax(zz), lse, keys, eps, f"layers.{li}.attn head {hi} ({path}), " \
        f"batch {bi}"
