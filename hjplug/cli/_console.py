"""The stdout console of the commands that print tables (inspect, stats, sweep, verify, paper).

On a terminal rich fits tables to its width. On a pipe or a file (a CI log, `| less`) it assumes
80 columns and clips what does not fit — whole columns, or numbers as '0.000…'; there the console
is made as wide as the widest table needs (COLUMNS, when set, still wins), and the spaces rich
pads lines with up to that width (a centred table title) are stripped from line ends. A reader
that closes the pipe early (`| head`) raises BrokenPipeError, which `hjplug` answers with exit 0,
rather than rich's own SystemExit(1) (exit 1 means "a check failed" for verify and paper).
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, cast

__all__ = ["stdout_console", "tolerate_narrow_encodings"]


class _StripTrailingSpaces:
    """sys.stdout (looked up at each write: tests swap it) without spaces at line ends.

    Spaces at the end of a write are held back until the next write shows whether a line end
    or more text follows them."""

    def __init__(self) -> None:
        self._held = ""

    def write(self, text: str) -> int:
        lines = (self._held + text).split("\n")
        last = lines.pop()
        kept = last.rstrip(" ")
        self._held = last[len(kept):]
        sys.stdout.write("".join(f"{ln.rstrip(' ')}\n" for ln in lines) + kept)
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # rich draws ASCII boxes for a non-UTF-8 stdout
        return getattr(sys.stdout, "encoding", None) or "utf-8"

    def fileno(self) -> int:
        return sys.stdout.fileno()


def tolerate_narrow_encodings() -> None:
    """stdout / stderr whose encoding cannot write every character (PYTHONIOENCODING=ascii,
    latin-1) write '?' for the rest (errors="replace") instead of raising UnicodeEncodeError
    in the middle of a table; rich draws ASCII boxes there on its own. UTF-8 streams are left
    as they are."""
    for stream in (sys.stdout, sys.stderr):
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        reconfigure = getattr(stream, "reconfigure", None)
        if enc.startswith("utf") or reconfigure is None:
            continue
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):  # a closed or detached stream: nothing to print there
            continue


def _stripped() -> IO[str]:
    return cast("IO[str]", _StripTrailingSpaces())  # the part of IO[str] rich uses


def stdout_console(*renderables: Any) -> Any:
    """A rich Console on stdout; when stdout is not a terminal, wide enough for `renderables`
    and without trailing spaces on its lines."""
    from rich.console import Console
    from rich.measure import Measurement

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
            raise BrokenPipeError

    out = _Console()
    if out.is_terminal:
        return out
    if os.environ.get("COLUMNS") or not renderables:
        return _Console(width=out.width, file=_stripped())
    probe = Console(width=100_000)
    need = max(Measurement.get(probe, probe.options, r).maximum for r in renderables)
    return _Console(width=max(out.width, need), file=_stripped())
