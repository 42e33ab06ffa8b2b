"""Command-line flags that the exporter and its subcommands (``doctor``, ``drill``) share.

They are declared here once so that a flag means the same thing, with the same type, default
and destination, whichever command reads it; only the help text says what it does there.
"""

from __future__ import annotations

import argparse


def add_connection_share(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--bybit.connection-share``: the share of Bybit's per-IP connection budget this process may use."""
    parser.add_argument(
        "--bybit.connection-share",
        dest="connection_share",
        type=float,
        default=1.0,
        metavar="SHARE",
        help=help_text,
    )


def parse_or_exit_code(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status argparse chose (``--help``: 0, a usage error: 2).

    A subcommand's ``main`` returns its status instead of leaving the process through argparse's
    ``SystemExit``, so that the exporter's own entry point (and the tests) decide how to exit.
    """
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
