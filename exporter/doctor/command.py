"""``bybit-dcp-exporter doctor``: a first-contact check of each configured account, read-only.

One line per check and account: ``ok``, ``warning`` or ``failed``, what Bybit answered and
what to do. ``--json`` prints a list of ``{account, check, status, detail, hint}`` objects.

Exit status: 0 when every check is ok, 1 when some check warns and none failed, 2 when a
check failed, or for a bad command line or configuration (the message names the field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ..bybit.pacing import budget_for_share
from ..config import AccountConfig, ConfigError, load_config
from ..config.flags import add_connection_share, parse_or_exit_code
from ..logs import setup_logging
from .checks import ALL_ACCOUNTS, EXIT_CODES, FAILED, Line, connection_budget, exit_code
from .run import STREAM_TIMEOUT, diagnose

PROG = "bybit-dcp-exporter doctor"
MARKS = {"ok": "ok     ", "warning": "warning", "failed": "failed "}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Check, before deploying, that each account's key, environment, clock, IP, permissions, "
        "DCP setup, account mode and private stream are right. Read-only: nothing is written to Bybit, and the "
        "stream subscribes `order` only. Accounts come from --config.file, else from the BYBIT_* environment "
        "as the exporter reads them. Exit status 0 all ok, 1 warnings, 2 failures.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="FILE", help="YAML file with accounts")
    p.add_argument("--account", metavar="NAME", help="check only this account of the configuration")
    p.add_argument("--json", action="store_true", help="print the lines as JSON: account, check, status, detail, hint")
    add_connection_share(
        p, "the exporter's share of Bybit's 500 new connections per 5 minutes, as the exporter is run (default 1)"
    )
    p.add_argument(
        "--stream-timeout",
        type=float,
        default=STREAM_TIMEOUT,
        metavar="SECONDS",
        help="how long the private-stream check waits for auth, subscription and a pong (default %(default)s)",
    )
    return p


def main(argv: list[str]) -> int:
    args = parse_or_exit_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        config = load_config(args.config_file)
        accounts = _selected(config.accounts, args.account)
        budget = budget_for_share(args.connection_share)
        if not args.stream_timeout > 0:
            raise ValueError("--stream-timeout must be positive")
    except (ConfigError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_CODES[FAILED]
    # The clients log what they meet; the lines say it better. Secrets stay masked either way.
    setup_logging("error", secrets=config.secrets(), api_keys=config.api_keys())
    lines = asyncio.run(diagnose(accounts, budget=budget, stream_timeout=args.stream_timeout))
    lines += connection_budget(config.accounts, args.connection_share)
    if args.json:
        print(json.dumps([line.to_dict() for line in lines], indent=2))
    else:
        for text in render(lines):
            print(text)
    return exit_code(lines)


def _selected(accounts: list[AccountConfig], name: str | None) -> list[AccountConfig]:
    if name is None:
        return accounts
    chosen = [a for a in accounts if a.name == name]
    if not chosen:
        names = ", ".join(a.name for a in accounts)
        raise ConfigError([f"--account: no account named {name!r}; the configuration has {names}"])
    return chosen


def render(lines: list[Line]) -> list[str]:
    """The text form: a heading per account, one line per check, the hint indented under it."""
    out: list[str] = []
    account: str | None = None
    for line in lines:
        if line.account != account:
            account = line.account
            if out:
                out.append("")
            out.append("configuration" if account == ALL_ACCOUNTS else f"account {account}")
        out.append(f"  {MARKS.get(line.status, line.status)}  {line.check}: {line.detail}")
        if line.hint and line.status != "ok":
            out.append(f"           -> {line.hint}")
    return out
