"""``bybit-dcp-exporter drill``: one DCP drill from the command line, with a summary and a JSON report.

Exit status: 0 when DCP cancelled the canary within window + tolerance and nothing else;
1 for any other outcome (refused, not fired, late, filled, rejected, error); 2 for a bad
command line or configuration; 130 when interrupted (the canary is cancelled first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys

import aiohttp

from ..bybit.rest import RestClient
from ..config import DRILL_CUTS, DRILL_SIDES, AccountConfig, ConfigError, DrillSettings, drill_settings, load_config
from ..dcp import PRODUCTS
from ..runtime.clock import SYSTEM_CLOCK
from .observers import DrillRest
from .run import run_drill
from .verdict import CANARY_LINK_PREFIX, PRODUCT_CATEGORY, DrillReport

PROG = "bybit-dcp-exporter drill"
DEFAULTS = DrillSettings()
INTERRUPTED_STATUS = 130


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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
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
    if problems or settings is None:
        print(f"{PROG}: " + "\n  - ".join(["cannot drill:", *problems]), file=sys.stderr)
        return 2
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
    if args.report:
        with open(args.report, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=2)
            fh.write("\n")
    if interrupted:
        return INTERRUPTED_STATUS
    return 0 if report.passed else 1


def _account(args: argparse.Namespace) -> AccountConfig:
    config = load_config(args.config_file)
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
    """Run the drill; SIGINT or SIGTERM cancels it (the canary is cancelled first). True if interrupted."""
    clock = SYSTEM_CLOCK
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        rest = RestClient(
            session,
            account=account.name,
            environment=account.environment,
            base_url=account.rest_url,
            api_key=account.api_key,
            api_secret=account.api_secret,
            observer=DrillRest(account.name),
            clock=clock,
        )
        link_id = CANARY_LINK_PREFIX + secrets.token_hex(8)
        task = asyncio.create_task(run_drill(account, settings, rest, clock, report, link_id=link_id, progress=_say))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return True
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return False


def _say(text: str) -> None:
    print(text, flush=True)
