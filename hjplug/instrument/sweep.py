"""`hjplug.sweep`: deform ε_h → λ·ε_h over a grid of λ, record the entropy of every head, check
∂H/∂ε ≥ 0 at fixed inputs, and find the fold bifurcations of one head's attribution landscape.

For each λ_s (ascending) one forward runs with the chosen heads deformed. Entropy per head is the
mean over rows with k_i ≥ 2 and finite statistics (NaN rows are counted, never averaged) and,
with a 2-D attention_mask among the inputs, over real (unpadded) query rows only, as
`Recorder.summary` (encoder-decoder models: encoder blocks by `attention_mask`, decoder self-
and cross-attention by `decoder_attention_mask`); the monotonicity check covers every row.
Monotonicity: in the same forward, every chosen head's π is re-evaluated at λ_{s+1} *with the
same q, k* (the readable eager path, independent of the kernel that produced H at λ_s); since
∂H(π_i)/∂ε = Var_π(z_i)/ε³ ≥ 0, any H(λ_{s+1}) < H(λ_s) − tol·(1 + H) is reported as a bug.
(The deformed model's own entropies need not be monotone in later layers: their inputs move.)

Folds (paper-notes §5): a head read as an LSE layer in its query — atoms W_j = k_j (the keys
visible to both queries, batch row 0), b_j = 0, ε = λ·ε_h — along the segment between two of
its query states: `scan_folds(K_h, 0, λ·ε_h, Path1D(q_a, q_b))` (closed-form ∇_x H, Hessian
classification, bisection; deterministic).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor, nn

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.instrument.records import MonotonicityViolation, SweepResult
from hjplug.instrument.stats import normalized, safe_mean

__all__ = ["EntropyMonotonicityWarning", "check_inputs", "check_scales", "run_model", "sweep"]

_WHERE = "hjplug.sweep"
Progress = Callable[[int, int], None]
# index → (entropy [B,H,Sq], keys [B,H,Sq], nan [B,H,Sq], eps [H], probe entropy or None)
Block = dict[int, tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]]


class EntropyMonotonicityWarning(UserWarning):
    """Entropy decreased with ε at fixed inputs: a bug (please report it with the sweep result)."""


def check_scales(scales: Any, where: str = _WHERE) -> list[float]:
    """Finite λ > 0, 1-D; returned sorted ascending without duplicates."""
    try:
        t = torch.as_tensor(scales, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidArgumentError("scales", "a 1-D sequence / tensor of finite numbers > 0",
                                   scales, where=where) from None
    if t.numel() == 0 or not bool((torch.isfinite(t) & (t > 0)).all()):
        bad = [float(x) for x in t if not (math.isfinite(float(x)) and float(x) > 0)][:3]
        raise InvalidArgumentError(
            "scales", "finite λ > 0 (λ → 0 is the tropical limit: use hjplug.instrument.deform("
            "model, 0.0) for the hard-max model itself)", bad or scales, where=where)
    return sorted(set(float(x) for x in t))


def _query_rows(model: nn.Module, inputs: Any) -> Tensor | None:
    """Real (unpadded) query rows [B, S] of the inputs' 2-D attention_mask, as the recorder's
    summary uses them (padded queries still see the real keys: left out of the means)."""
    from hjplug.instrument._masks import mask_argument

    if isinstance(inputs, Mapping):
        return mask_argument(model, (), dict(inputs))
    args = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
    return mask_argument(model, args, {})


def _block_rows(driver: Any, i: int, real: Tensor | None) -> Tensor | None:
    """Real query rows [B, Sq] of block i: the ones the driver saw in its last call of that block
    (HF: per encoder / decoder stack of encoder-decoder models), else the inputs' mask."""
    seen: dict[int, Tensor | None] = getattr(driver, "real_rows", {})
    return seen.get(i, real)


def check_inputs(inputs: Any, where: str = _WHERE) -> None:
    """Refuse inputs `run_model` cannot call a model with (before anything is hooked)."""
    ok = isinstance(inputs, tuple | list | Tensor) or (
        isinstance(inputs, Mapping) and all(isinstance(k, str) for k in inputs))
    if not ok:
        raise InvalidArgumentError(
            "inputs", "the model's inputs: a dict of keyword arguments (called as "
            "model(**inputs)), a tuple / list of positional arguments (model(*inputs)) or one "
            "tensor (model(inputs))", inputs if not isinstance(inputs, Mapping) else
            f"a mapping with keys {list(inputs)[:4]}", where=where)


def run_model(model: nn.Module, inputs: Any) -> Any:
    """model(**inputs) for a mapping (dict, a tokenizer's BatchEncoding), model(*inputs) for a
    tuple / list, else model(inputs)."""
    with torch.no_grad():
        if isinstance(inputs, Mapping):
            return model(**inputs)
        if isinstance(inputs, tuple | list):
            return model(*inputs)
        return model(inputs)


def _progress(progress: bool | Progress | None, n: int) -> tuple[Progress, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    show = progress if isinstance(progress, bool) else (n >= 10 and sys.stderr.isatty())
    if not show:
        return (lambda i, n: None), lambda: None
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    bar = RichProgress(console=Console(stderr=True), transient=True)
    task = bar.add_task("ε-sweep", total=n)
    bar.start()
    return (lambda i, n: bar.update(task, completed=i)), bar.stop


def sweep(model: nn.Module, inputs: Any, scales: Sequence[float] | Tensor, *,
          layers: Sequence[int] | int | None = None, heads: Sequence[int] | int | None = None,
          folds: bool = True, fold_head: tuple[int, int] | None = None,
          fold_queries: tuple[int, int] | None = None, tol: float = 1e-5, strict: bool = False,
          progress: bool | Progress | None = None, fixed_inputs: bool = True) -> SweepResult:
    """Sweep ε → λ·ε (λ in `scales`) on `layers` × `heads` (None = all); see module docstring.

    HF models and FX-converted models, per block or per chosen head.
    fixed_inputs=True adds each chosen head's curve at the undeformed inputs (one more forward,
    every λ in one `hjplug.kernels.entropy_sweep` pass; monotonicity checked over the grid).
    strict=True raises HJPlugError on a monotonicity violation (else a warning + `violations`).
    """
    from hjplug.instrument._fx import is_fx
    from hjplug.instrument._hf import is_hf
    from hjplug.instrument.fixed_curve import FixedCurve, curves

    lam = check_scales(scales)
    check_inputs(inputs)
    if not (isinstance(tol, int | float) and tol >= 0):
        raise InvalidArgumentError("tol", "a number ≥ 0", tol, where=_WHERE)
    if is_hf(model):
        from hjplug.instrument._sweep_hf import HFDriver

        driver: Any = HFDriver(model, layers, heads)
    elif is_fx(model):
        from hjplug.instrument._sweep_fx import FXDriver

        driver = FXDriver(model, layers, heads)
    else:
        raise InvalidArgumentError("model", "a transformers model or an hjplug.convert result",
                                   type(model).__name__, where=_WHERE)
    step, stop = _progress(progress, len(lam))
    S, L = len(lam), driver.n_blocks
    real = _query_rows(model, inputs)  # [B, S] real (unpadded) queries, or None
    means: list[dict[int, tuple[list[float], list[float], list[float]]]] = []
    violations: list[MonotonicityViolation] = []
    checked, nan_rows = 0, 0
    fixed_blocks: FixedCurve | None = None
    try:
        with ExitStack() as stack:
            driver.enter(stack)
            for s, lv in enumerate(lam):
                nxt = lam[s + 1] if s + 1 < S else None
                blocks: Block = driver.run(inputs, lv, nxt)
                row: dict[int, tuple[list[float], list[float], list[float]]] = {}
                for i, (e, k, bad, ev, probe) in blocks.items():
                    valid = (k > 1) & ~bad  # [B, H, Sq]
                    rows = _block_rows(driver, i, real)
                    if rows is not None and rows.shape == (k.shape[0], k.shape[2]):
                        means_ok = valid & rows.to(valid.device)[:, None, :]  # padded rows out
                    else:
                        means_ok = valid
                    nrm = normalized(e, k)
                    nan_rows += int(bad.sum()) if s == 0 else 0
                    H = e.shape[1]
                    row[i] = ([safe_mean(e[:, h].double(), means_ok[:, h]) for h in range(H)],
                              [safe_mean(nrm[:, h].double(), means_ok[:, h]) for h in range(H)],
                              [float(ev[h] if ev.numel() > h else ev[0]) for h in range(H)])
                    if probe is None:
                        continue
                    for h in driver.heads_of(i):
                        e0, e1, ok = e[:, h].double(), probe[:, h].double(), valid[:, h]
                        checked += int(ok.sum())
                        drop = ok & (e1 < e0 - tol * (1 + e0.abs()))
                        for b, q in drop.nonzero().tolist():
                            violations.append(MonotonicityViolation(
                                i, driver.paths[i], h, b, q, lv, float(nxt or math.nan),
                                float(e0[b, q]), float(e1[b, q])))
                means.append(row)
                step(s + 1, S)
            if fixed_inputs:
                fixed_blocks = driver.fixed_curve(inputs, lam)
            fold_out: tuple[Any, Any, str] = ((), None, "")
            if folds:
                fold_out = driver.folds(inputs, lam, fold_head, fold_queries)
    finally:
        stop()
    Hmax = max((len(v[0]) for row in means for v in row.values()), default=1)
    Hmax = max([Hmax, *(e.shape[1] for e, _ in (fixed_blocks or {}).values())])
    ent = torch.full((S, L, Hmax), math.nan, dtype=torch.float64)
    nent, eps_t = ent.clone(), ent.clone()
    for s, row in enumerate(means):
        for i, (m_h, n_h, eps_h) in row.items():  # per-head means and ε of block i
            ent[s, i, :len(m_h)] = torch.tensor(m_h, dtype=torch.float64)
            nent[s, i, :len(n_h)] = torch.tensor(n_h, dtype=torch.float64)
            eps_t[s, i, :len(eps_h)] = torch.tensor(eps_h, dtype=torch.float64)
    fixed_ent = fixed_nent = None
    if fixed_blocks is not None:
        fixed_ent, fixed_nent, more, n_fixed = curves(
            fixed_blocks, driver.heads_of, lam, driver.paths, (S, L, Hmax), tol,
            {i: _block_rows(driver, i, real) for i in fixed_blocks})
        violations += more
        checked += n_fixed
    if violations:
        msg = (f"{_WHERE}: entropy decreased with ε at fixed inputs in {len(violations)} "
               f"(row, step) pairs (first: {violations[0]}). ∂H/∂ε = Var_π(z)/ε³ ≥ 0 forbids "
               "this: it is a bug in hjplug or in the model's attention; please report it.")
        if strict:
            raise HJPlugError(msg)
        warnings.warn(msg, EntropyMonotonicityWarning, stacklevel=2)
    return SweepResult(
        scales=torch.tensor(lam, dtype=torch.float64), entropy=ent, normalized_entropy=nent,
        epsilon=eps_t, layers=tuple(driver.chosen), heads=driver.heads,
        paths=tuple(driver.paths), violations=tuple(violations), checked=checked,
        folds=tuple(fold_out[0]), fold_scan=fold_out[1], fold_source=fold_out[2],
        nan_rows=nan_rows, notes=tuple(driver.notes), fixed_entropy=fixed_ent,
        fixed_normalized_entropy=fixed_nent)


def fold_scan(K: Tensor, qa: Tensor, qb: Tensor, eps_grid: list[float]) -> Any:
    """scan_folds over the atoms K [N, d] (b = 0) along Path1D(qa, qb)."""
    from hjplug.landscape import Path1D, scan_folds

    W = K.detach().double()
    b = torch.zeros(W.shape[0], dtype=torch.float64)
    return scan_folds(W, b, eps_grid, Path1D(tuple(qa.double().tolist()),
                                             tuple(qb.double().tolist())))


def fold_inputs(keys: Tensor, queries: Tensor, vis: Tensor, fold_queries: tuple[int, int] | None,
                where: str = _WHERE) -> tuple[Tensor, Tensor, Tensor, int, int]:
    """(atoms K, q_a, q_b, i_a, i_b) for one head of batch row 0.

    keys [Sk, D], queries [Sq, D], vis [Sq, Sk] bool. Default queries: the first query i_a
    with ≥ 2 visible keys that shares ≥ 2 with a later one, and the last such i_b (the first and
    last with ≥ 2 visible keys unless a sliding window keeps them apart); the atoms are the keys
    visible to both.
    """
    if fold_queries is None:
        v = vis.to(torch.float32)  # one [Sq] product per candidate i_a, no [Sq, Sq] matrix
        for ia in (v.sum(-1) >= 2).nonzero().reshape(-1).tolist():
            later = ((v[ia + 1:] @ v[ia]) >= 2).nonzero().reshape(-1)  # shared keys ≥ 2
            if later.numel():
                ib = ia + 1 + int(later[-1])
                break
        else:
            raise HJPlugError(f"{where}: no two queries share ≥ 2 visible keys; no path to "
                              "scan (pass folds=False).")
    else:
        ia, ib = fold_queries
        n = queries.shape[0]
        if not all(isinstance(x, int) and 0 <= x < n for x in (ia, ib)) or ia == ib:
            raise InvalidArgumentError("fold_queries", f"two distinct query indices in [0, {n})",
                                       fold_queries, where=where)
    both = vis[ia] & vis[ib]
    if int(both.sum()) < 2:
        raise HJPlugError(f"{where}: queries {ia} and {ib} share fewer than two visible keys.")
    return keys[both], queries[ia], queries[ib], ia, ib
