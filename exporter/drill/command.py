"""``bybit-dcp-exporter drill``: one DCP drill from the command line, with a summary and a JSON report.

Exit status: 0 when DCP cancelled the canary within window + tolerance and nothing else;
1 for any other outcome (refused, not fired, late, filled, rejected, error); 2 for a bad
command line or configuration, ``--report`` in a place that cannot be written included
(checked before any order is placed); 3 when the drill passed but its report could not be
written afterwards; 130 when interrupted by SIGINT, SIGTERM or SIGHUP (the canary is
cancelled first).

The report is written atomically: a temporary file in the report's directory, then renamed
over the report, so a reader never sees half a report and a failed write leaves the old one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile

import aiohttp

from ..bybit.clients import rest_client
from ..bybit.observers import RestLog
from ..config import DRILL_CUTS, DRILL_SIDES, AccountConfig, ConfigError, DrillSettings, drill_settings, load_config
from ..config.flags import parse_or_exit_code
from ..dcp import PRODUCT_CATEGORY, PRODUCTS
from ..runtime.clock import SYSTEM_CLOCK
from .run import run_drill
from .verdict import CANARY_LINK_PREFIX, DrillReport

PROG = "bybit-dcp-exporter drill"
DEFAULTS = DrillSettings()
FAILED_STATUS = 1
USAGE_STATUS = 2
REPORT_NOT_WRITTEN_STATUS = 3
INTERRUPTED_STATUS = 130
# A closed terminal (SIGHUP) interrupts a drill as Ctrl-C does: the canary is cancelled first.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Prove that DCP fires: hold a dcp.* connection, rest a post-only canary order far from the "
        "market, cut the connection and time DCP's cancel. The account comes from the BYBIT_* environment, "
        "or from --config.file with --account. Refuses mainnet without --mainnet.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="FILE", help="YAML file with accounts")
    p.add_argument("--account", help="the account of --config.file to drill (needed when it has several)")
    p.add_argument("--product", default=DEFAULTS.product, choices=PRODUCTS, help="default %(default)s")
    p.add_argument("--symbol", default=DEFAULTS.symbol, help="the canary's symbol (default %(default)s)")
    p.add_argument("--side", default=DEFAULTS.side, choices=DRILL_SIDES, help="default %(default)s")
    p.add_argument("--qty", default=DEFAULTS.qty, help="the canary's quantity (default %(default)s)")
    p.add_argument(
        "--price-offset",
        type=float,
        default=DEFAULTS.price_offset,
        help="how far from the last price the canary rests, as a fraction (default %(default)s)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULTS.tolerance,
        help="seconds beyond the window still in time (default %(default)s: Bybit scans about every 30 s)",
    )
    p.add_argument(
        "--cut",
        default=DEFAULTS.cut,
        choices=DRILL_CUTS,
        help="abort: drop the armed connection without a close frame (default); silence: stop pinging "
        "(the connection then dies at Bybit's 30 s idle cut-off)",
    )
    p.add_argument(
        "--allow-other-orders",
        action="store_true",
        help="drill even though the product has other active orders (DCP cancels them too)",
    )
    p.add_argument("--mainnet", action="store_true", help="allow a drill on mainnet (use a dedicated sub-account)")
    p.add_argument("--report", metavar="FILE", help="write the JSON report here")
    return p


def main(argv: list[str]) -> int:
    args = parse_or_exit_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    problems: list[str] = []
    try:
        account = _account(args)
    except ConfigError as exc:
        problems += exc.errors
    values = {
        "product": args.product,
        "symbol": args.symbol,
        "side": args.side,
        "qty": args.qty,
        "price_offset": args.price_offset,
        "tolerance": args.tolerance,
        "cut": args.cut,
        "allow_other_orders": args.allow_other_orders,
        "mainnet": args.mainnet,
    }

    def report_problem(problem: str, *, at: object = None) -> None:
        problems.append(f"--{str(at).replace('_', '-')}: {problem}")

    settings = drill_settings(values, report_problem)
    if args.report:
        unwritable = report_path_problem(args.report)
        if unwritable:
            problems.append(f"--report: {unwritable}")
    if problems or settings is None:
        print(f"{PROG}: " + "\n  - ".join(["cannot drill:", *problems]), file=sys.stderr)
        return USAGE_STATUS
    report = DrillReport(
        account=account.name,
        environment=account.environment,
        product=settings.product,
        category=PRODUCT_CATEGORY[settings.product],
        symbol=settings.symbol,
        cut=settings.cut,
        tolerance_seconds=settings.tolerance,
    )
    interrupted = asyncio.run(_drill(account, settings, report))
    for line in report.summary():
        print(line, flush=True)
    written = True
    if args.report:
        try:
            write_report(args.report, json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as exc:
            written = False
            print(f"{PROG}: the report could not be written to {args.report!r}: {exc.strerror or exc}", file=sys.stderr)
    return exit_status(passed=report.passed, interrupted=interrupted, report_written=written)


def exit_status(*, passed: bool, interrupted: bool, report_written: bool) -> int:
    """An interruption first, then a failed drill; a passed drill whose report is lost is 3, not 0 or 1."""
    if interrupted:
        return INTERRUPTED_STATUS
    if not passed:
        return FAILED_STATUS
    return 0 if report_written else REPORT_NOT_WRITTEN_STATUS


def report_path_problem(path: str) -> str | None:
    """Why a report could not be written at ``path``, found by writing a scratch file beside it (None: it can)."""
    if os.path.isdir(path):
        return f"{path!r} is a directory; give a file name"
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, scratch = tempfile.mkstemp(prefix=".drill-report-", dir=directory)
    except OSError as exc:
        return f"cannot write in {directory!r}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(scratch)
    return None


def write_report(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same directory, synced, then renamed."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, scratch = tempfile.mkstemp(prefix=".drill-report-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise


def _account(args: argparse.Namespace) -> AccountConfig:
    config = load_config(args.config_file)
    for warning in config.warnings:  # e.g. a secret file others can read
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    accounts = config.accounts
    if args.account:
        accounts = [a for a in accounts if a.name == args.account]
        if not accounts:
            names = ", ".join(a.name for a in config.accounts)
            raise ConfigError([f"--account: no account named {args.account!r}; the configuration has {names}"])
    if len(accounts) > 1:
        raise ConfigError(["--account: the configuration has several accounts; name the one to drill"])
    return accounts[0]


async def _drill(account: AccountConfig, settings: DrillSettings, report: DrillReport) -> bool:
    """Run the drill; SIGINT, SIGTERM or SIGHUP cancels it (the canary is cancelled first). True if interrupted."""
    clock = SYSTEM_CLOCK
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        rest = rest_client(account, session, observer=RestLog(account.name), clock=clock)
        link_id = CANARY_LINK_PREFIX + secrets.token_hex(8)
        task = asyncio.create_task(run_drill(account, settings, rest, clock, report, link_id=link_id, progress=_say))
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return True
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
    return False


def _say(text: str) -> None:
    print(text, flush=True)
