"""`hjplug paper [EXPERIMENT ...] [--quick] [-o DIR] [--seed N] [--json]`.

Runs the paper's quantitative claims with hjplug.math and LSELayer: each experiment prints a
table, writes a PNG into DIR and ends with a verdict. Exit 0 only if every verdict (and every
entropy-monotonicity check) passes; 1 otherwise; 2 on bad input.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hjplug.cli._model_arg import OutputPathError
from hjplug.cli._seed import seed

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.table import Table

    from hjplug.paper import ExperimentResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "paper",
        help="reproduce the paper's quantitative claims (tables, figures, verdicts)",
        description="Run the paper experiments: 1 identities, 2 recovery, 3 quadrature, "
        "4 robustness, 5 phase, 6 folds (default: all). Figures and report.json go to DIR. "
        "--quick runs reduced versions of all six (< 30 s) and takes no experiment list.",
    )
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help="names or numbers 1–6 (default: all)")
    p.add_argument("--quick", action="store_true", help="reduced sizes, all six experiments")
    p.add_argument("-o", "--out", default="hjplug-paper", metavar="DIR",
                   help="output directory for figures and report.json (default: hjplug-paper)")
    p.add_argument("--seed", type=seed, default=0,
                   help="random seed in [0, 2³² − 1] (default 0; deterministic)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=run)


def _table(result: ExperimentResult) -> Table:
    from rich.table import Table

    table = Table(title=f"{result.number}. {result.title}", title_justify="left")
    for col in result.columns:
        table.add_column(col, overflow="fold")
    for row in result.rows:
        table.add_row(*row)
    return table


def _print_result(console: Console, result: ExperimentResult) -> None:
    console.print(_table(result))
    for note in result.notes:
        console.print(f"  [dim]note: {note}[/]")
    v, ec = result.verdict, result.entropy_check
    mark = "[green]PASS[/]" if v.passed else "[bold red]FAIL[/]"
    console.print(f"  verdict: {mark} — {v.criterion}")
    console.print(f"  measured: {v.detail}")
    emark = "[green]ok[/]" if ec.passed else "[bold red]VIOLATED[/]"
    console.print(
        f"  entropy non-decreasing in ε: {emark} ({ec.n_points} points × {ec.n_eps} ε, "
        f"{ec.violations} violations, max drop {ec.max_drop:.1e}, "
        f"min ∂H/∂ε {ec.min_derivative:.1e})")
    console.print(f"  figure: {result.figure}  ({result.seconds:.1f} s)\n")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from hjplug.cli._console import stdout_console
    from hjplug.paper import resolve_experiments, run_paper
    from hjplug.paper._common import ensure_writable_dir

    names = resolve_experiments(args.experiments, args.quick)  # bad input fails before any work
    if not args.out.strip():  # Path("") is the current directory: never write there by accident
        raise OutputPathError("-o is an empty string; expected a directory path, e.g. "
                              "hjplug-paper.")
    ensure_writable_dir(args.out)
    console = Console(stderr=True) if args.json else stdout_console()
    progress = Progress(TextColumn("[bold]paper[/] {task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                        transient=True)
    with progress:
        task = progress.add_task("starting…", total=len(names))

        def on_start(name: str, title: str) -> None:
            progress.update(task, description=f"{name}: {title}")

        def on_done(result: ExperimentResult) -> None:
            if not args.json:
                _print_result(progress.console, result)
            progress.advance(task)

        report = run_paper(list(args.experiments), quick=args.quick, out_dir=args.out,
                           seed=args.seed, on_start=on_start, on_done=on_done)
    assert len(report.results) == len(names)
    if args.json:
        print(report.to_json())
        return 0 if report.passed else 1

    summary = Table(title=f"hjplug paper — seed {report.seed}"
                    f"{' (quick)' if report.quick else ''}, {report.seconds:.1f} s",
                    title_justify="left")
    for col in ("#", "experiment", "verdict", "entropy ↑ in ε", "time", "figure"):
        summary.add_column(col, overflow="fold")
    for r in report.results:
        summary.add_row(str(r.number), r.name,
                        "[green]pass[/]" if r.verdict.passed else "[bold red]FAIL[/]",
                        "[green]ok[/]" if r.entropy_check.passed else "[bold red]violated[/]",
                        f"{r.seconds:.1f} s", r.figure)
    console.print(summary)
    console.print(f"report: {report.out_dir}/report.json")
    n_fail = sum(not r.passed for r in report.results)
    if n_fail:
        console.print(f"[bold red]{n_fail} of {len(report.results)} experiments failed[/]")
        return 1
    console.print(f"[green]all {len(report.results)} experiments pass[/]")
    return 0
