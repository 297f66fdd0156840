"""The stdout console of the commands that print tables (inspect, stats, sweep, verify, paper).

On a terminal rich fits tables to its width. On a pipe or a file (a CI log, `| less`) it assumes
80 columns and clips what does not fit — whole columns, or numbers as '0.000…'; there the console
is made as wide as the widest table needs (COLUMNS, when set, still wins). A reader that closes
the pipe early (`| head`) raises BrokenPipeError, which `hjplug` answers with exit 0, rather than
rich's own SystemExit(1) (exit 1 means "a check failed" for verify and paper).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["stdout_console"]


def stdout_console(*renderables: Any) -> Any:
    """A rich Console on stdout, wide enough for `renderables` when stdout is not a terminal."""
    from rich.console import Console
    from rich.measure import Measurement

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
            raise BrokenPipeError

    out = _Console()
    if out.is_terminal or os.environ.get("COLUMNS") or not renderables:
        return out
    probe = Console(width=100_000)
    need = max(Measurement.get(probe, probe.options, r).maximum for r in renderables)
    return _Console(width=max(out.width, need))
