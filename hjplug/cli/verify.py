"""`hjplug verify [--seed N] [--json]`: check the paper's identities; exit 0 only if all pass."""

from __future__ import annotations

import argparse

from hjplug.cli._seed import seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check the Hamilton–Jacobi identities numerically (fp64, independent evaluations)",
        description="Check the paper's identities (paper-notes §1–§3) on fresh random fp64 data: "
        "each against an independent evaluation. Exit code 0 only when every row passes.",
    )
    p.add_argument("--seed", type=seed, default=None,
                   help="random seed in [0, 2³² − 1] (default: a fresh one)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hjplug.cli._console import stdout_console
    from hjplug.identities import verify

    if args.json:
        report = verify(seed=args.seed)
        print(report.to_json())
        return 0 if report.passed else 1

    console = stdout_console()
    with console.status("checking identities…") as status:
        report = verify(seed=args.seed, progress=lambda name: status.update(f"checking {name}…"))
    table = Table(title=f"hjplug verify — seed {report.seed}, fp64", title_justify="left")
    table.add_column("identity", overflow="fold")
    table.add_column("setting", overflow="fold")
    table.add_column("max error", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("verdict", justify="center")
    for row in report.rows:
        verdict = "[green]pass[/]" if row.passed else "[bold red]FAIL[/]"
        table.add_row(row.identity, row.setting, f"{row.max_error:.2e}", f"{row.tolerance:.0e}",
                      verdict)
    console.print(table)
    n_fail = sum(not r.passed for r in report.rows)
    if n_fail:
        console.print(f"[bold red]{n_fail} of {len(report.rows)} identities failed[/]")
        return 1
    console.print(f"[green]all {len(report.rows)} identities hold[/]")
    return 0


