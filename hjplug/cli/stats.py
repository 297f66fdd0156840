"""`hjplug stats [MODEL] [--text …] [--json]`: per layer × head ε-statistics of one forward.

MODEL as for `hjplug inspect` (default: the bundled all-MiniLM-L6-v2, offline; a local HF
directory, a cached model id, or a config.json with random weights).
"""

from __future__ import annotations

import argparse
import json

from hjplug.cli._model_arg import (
    OutputPathError,
    add_model_argument,
    add_text_argument,
    check_output,
    load,
)
from hjplug.cli._text import check_text
from hjplug.errors import InvalidArgumentError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats", help="ε, entropy H/log k, particle/mixed/wave per attention head (default: "
        "all-MiniLM-L6-v2, offline)",
        description="Run one forward with ε-instrumentation and print, per layer × head, the "
        "viscosity ε_h, the mean normalised entropy H(π)/log k (particle < 0.33 ≤ mixed ≤ 0.66 < "
        "wave), the top-2 gap Δ/ε relative to log k and the curvature ‖Cov_π(k)‖/ε with its "
        "bound max‖k‖²/ε. Nothing is downloaded.")
    add_model_argument(p)
    add_text_argument(p)
    p.add_argument("--stats", default="epsilon,lse,entropy,gap", metavar="LIST",
                   help="comma-separated statistics (epsilon, lse, entropy, gap, topk, "
                        "curvature, weights; entropy is always recorded, the per-head summary "
                        "is built on it); default: epsilon,lse,entropy,gap")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--save", default=None, metavar="FILE",
                   help="also save the recording (.json or .pt)")
    p.set_defaults(func=run)


def chosen_stats(text: str) -> tuple[str, ...]:
    """--stats: the named statistics, checked, plus the entropy (every summary row needs it)."""
    from hjplug.instrument.names import STATS, check_stats

    names = [s.strip() for s in text.split(",") if s.strip()]
    try:
        return check_stats([*check_stats(names, "hjplug stats"), "entropy"], "hjplug stats")
    except InvalidArgumentError:
        unknown = ", ".join(repr(n) for n in names if n not in _known())
        raise InvalidArgumentError(
            "--stats", "comma-separated statistic names from: " + ", ".join(STATS), text,
            hint=(f"Unknown: {unknown}. " if unknown else "") + "Stored names such as "
            "'normalized_entropy' select their group too.") from None


def _known() -> set[str]:
    from hjplug.instrument.names import PRODUCES

    return {n for s, ns in PRODUCES.items() for n in (s, *ns)}


def run(args: argparse.Namespace) -> int:
    from hjplug.instrument import instrument
    from hjplug.instrument.recorder import _jsonable
    from hjplug.instrument.sweep import run_model

    stats = chosen_stats(args.stats)
    check_text(args.model, args.text)
    if args.save is not None:  # before loading: fails fast, never overwrites the model
        check_output(args.save, args.model, "--save", "stats.json", make_parents=True,
                     suffixes=(".json", ".pt"))
    loaded = load(args.model, text=args.text)
    with instrument(loaded.model, stats=stats) as rec:
        run_model(loaded.model, loaded.inputs)
    summary = rec.summary()
    if args.save is not None:
        try:
            rec.save(args.save)
        except OSError as exc:
            raise OutputPathError(f"{args.save}: --save failed ({exc.strerror or exc}); no partial "
                                  "file was left there. Choose another path.") from exc
    if args.json:
        print(json.dumps({"model": loaded.name, "source": loaded.source,
                          "heads": [{k: _jsonable(v) for k, v in r.items()}
                                    for r in summary.to_records()], "notes": rec.notes},
                         indent=2, allow_nan=False))
        return 0
    from hjplug.cli._console import stdout_console

    table = summary.rich_table(title=f"ε-statistics — {loaded.name}")
    out = stdout_console(table)
    out.print(table)
    reg = ", ".join(f"{n} {k}" for k, n in sorted(summary.regimes().items()))
    out.print(f"{len(summary)} heads/readouts: {reg}. Source: {loaded.source}")
    for note in rec.notes:
        out.print(f"[dim]note: {note}[/]")
    return 0
