"""The `hjplug` command: one module per subcommand, listed explicitly in SUBCOMMANDS.

Each subcommand module defines `register(subparsers) -> None`, which adds its parser and sets
`func=run` with `run(args) -> int`. Errors derived from HJPlugError are printed as one clear
message (exit code 2) — a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hjplug._version import __version__

# Explicit and ordered: the help text lists them in this order.
SUBCOMMANDS: tuple[str, ...] = ("hjplug.cli.verify", "hjplug.cli.inspect", "hjplug.cli.paper",
                                 "hjplug.cli.export_onnx", "hjplug.cli.stats", "hjplug.cli.sweep",
                                 "hjplug.cli.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hjplug",
        description="Hamilton–Jacobi readings of deep networks (arXiv 2605.28983).",
    )
    parser.add_argument("--version", action="version", version=f"hjplug {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    for p in sub.choices.values():  # also after the subcommand; absent there, the top one holds
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show full tracebacks on errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hjplug.cli._console import tolerate_narrow_encodings
    from hjplug.errors import HJPlugError

    tolerate_narrow_encodings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HJPlugError as exc:
        if args.debug:
            raise
        print(f"hjplug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `hjplug verify --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("hjplug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
