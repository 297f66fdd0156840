"""Run the paper experiments in order; resolve names; write report.json atomically."""

from __future__ import annotations

import contextlib
import importlib
import operator
import os
import time
from collections.abc import Callable, Iterator, Sequence

from hjplug.errors import HJPlugError, InvalidArgumentError
from hjplug.paper.records import ExperimentResult, PaperReport

__all__ = ["EXPERIMENTS", "MODULES", "checked_seed", "resolve_experiments", "run_paper"]

# name → module (each defines NUMBER, NAME, TITLE, verdict(...) and run(cfg) -> ExperimentResult)
MODULES: dict[str, str] = {
    "identities": "hjplug.paper.exp1_identities",
    "recovery": "hjplug.paper.exp2_recovery",
    "quadrature": "hjplug.paper.exp3_quadrature",
    "robustness": "hjplug.paper.exp4_robustness",
    "phase": "hjplug.paper.exp5_phase",
    "folds": "hjplug.paper.exp6_folds",
}
EXPERIMENTS: tuple[str, ...] = tuple(MODULES)


def valid_names() -> str:
    return ", ".join(f"{i} {n}" for i, n in enumerate(EXPERIMENTS, 1))


def resolve_experiments(names: Sequence[str] | None, quick: bool = False) -> tuple[str, ...]:
    """Experiment names (or numbers 1–6) → canonical names in run order; all when empty.

    `quick` runs the fixed quick set of all six, so it cannot be combined with a list."""
    if not names:
        return EXPERIMENTS
    if quick:
        raise HJPlugError(
            "--quick runs the reduced versions of all six experiments and cannot be combined "
            f"with an experiment list ({' '.join(names)}); run either `hjplug paper --quick` or "
            f"`hjplug paper NAME ...` (valid names: {valid_names()})")
    chosen: set[str] = set()
    for raw in names:
        key = raw.strip().lower()
        if key.isdigit() and 1 <= int(key) <= len(EXPERIMENTS):
            key = EXPERIMENTS[int(key) - 1]
        if key not in MODULES:
            raise HJPlugError(f"unknown experiment {raw!r}; valid experiments: {valid_names()}")
        chosen.add(key)
    return tuple(n for n in EXPERIMENTS if n in chosen)


def checked_seed(seed: object) -> int:
    """`seed` as an int in [0, SEED_MAX] (the range of `hjplug paper --seed` and hjplug.verify),
    or InvalidArgumentError naming run_paper; bools, floats and strings are refused, not cast."""
    from hjplug.identities import SEED_MAX

    try:
        value = None if isinstance(seed, bool) else operator.index(seed)  # type: ignore[arg-type]
    except TypeError:
        value = None
    if value is None or not 0 <= value <= SEED_MAX:
        raise InvalidArgumentError(
            "seed", f"an integer in [0, {SEED_MAX}] (default 0)", seed,
            where="hjplug.paper.run_paper",
            hint=f"For a larger number, pass seed % {SEED_MAX + 1}.")
    return value


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """The experiments use many tiny tensors: one intra-op thread is faster (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_paper(
    experiments: Sequence[str] | None = None,
    *,
    quick: bool = False,
    out_dir: str | os.PathLike[str] = "hjplug-paper",
    seed: int = 0,
    on_start: Callable[[str, str], None] | None = None,
    on_done: Callable[[ExperimentResult], None] | None = None,
) -> PaperReport:
    """Run the chosen experiments (default all) writing figures + report.json into out_dir.

    Deterministic for a given seed (an int in [0, hjplug.identities.SEED_MAX]; anything else
    raises InvalidArgumentError before any work). on_start(name, title) / on_done(result)
    report progress."""
    from hjplug.paper._common import RunConfig, atomic_write_text, ensure_writable_dir

    seed = checked_seed(seed)  # before any work: nothing is written for a bad seed
    names = resolve_experiments(experiments, quick)
    out = ensure_writable_dir(out_dir)
    cfg = RunConfig(quick=quick, seed=seed, out_dir=out)
    start = time.perf_counter()
    results: list[ExperimentResult] = []
    with _single_thread():
        for name in names:
            module = importlib.import_module(MODULES[name])
            if on_start is not None:
                on_start(name, module.TITLE)
            result = module.run(cfg)
            results.append(result)
            if on_done is not None:
                on_done(result)
    report = PaperReport(seed=cfg.seed, quick=quick, out_dir=str(out), results=tuple(results),
                         seconds=time.perf_counter() - start)
    atomic_write_text(out / "report.json", report.to_json() + "\n")
    return report
