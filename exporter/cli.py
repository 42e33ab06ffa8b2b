"""Command line: ``bybit-dcp-exporter [flags]``, ``--check-config``, ``--demo``, and the subcommands
``doctor``, ``drill`` and ``simulate`` (:data:`SUBCOMMANDS`, which ``--help`` lists).

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or a valid ``--check-config``,
1 when it cannot listen on the web address, 2 for a bad command line, configuration or
web config (the message names the field).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import socket
import sys
import textwrap
from collections.abc import Callable

from . import __version__
from .bybit.pacing import Pacing, budget_for_share
from .bybit.tls import lean_read_buffers
from .config import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    Config,
    ConfigError,
    load_config,
    parse_listen_address,
)
from .config.flags import add_connection_share
from .doctor.command import main as doctor_main
from .drill.command import main as drill_main
from .logs import setup_logging
from .metrics import Metrics
from .monitor.fleet import Fleet
from .monitor.shard import ONE_SHARD, Shard, resolve_index, select
from .runtime.allocator import keep_memory_small
from .runtime.clock import SYSTEM_CLOCK
from .status.model import DEFAULT_RUNBOOK_URL, Links
from .status.service import StatusService, sample_interval
from .version import version_text
from .web.app import make_app
from .web.config import WebConfigSource
from .web.guard import ConnectionGuard
from .web.liveness import LIVENESS_ROUTE, add_liveness_route

log = logging.getLogger("exporter")

PROG = "bybit-dcp-exporter"
DEMO_LISTEN_ADDRESS = "127.0.0.1:9842"


def _simulate(argv: list[str]) -> int:
    # The simulator's modules (here and for --demo) load only when asked for: a
    # production exporter watching many accounts never carries them.
    from .simulator.cli import main as simulate_main

    return simulate_main(argv)


@dataclasses.dataclass(frozen=True)
class Subcommand:
    run: Callable[[list[str]], int]
    help: str


# Every subcommand `main` dispatches on (the first argument), each with the line --help shows for it.
SUBCOMMANDS: dict[str, Subcommand] = {
    "doctor": Subcommand(
        doctor_main, "check each account against Bybit before a deployment (read-only): key, clock, DCP, mode, stream"
    ),
    "drill": Subcommand(drill_main, "prove that DCP fires: one drill with a canary order, a summary and a report"),
    "simulate": Subcommand(_simulate, "run the Bybit simulator on its own (REST, private stream, DCP engine)"),
}


def _subcommands_text() -> str:
    width = max(map(len, SUBCOMMANDS)) + 2
    lines = [f"  {name:<{width}}{sub.help}" for name, sub in SUBCOMMANDS.items()]
    return f"subcommands ({PROG} SUBCOMMAND --help for each):\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    description = (
        "Prometheus exporter for Bybit Disconnection Protect (DCP). "
        "Without --config.file, one account is read from BYBIT_* environment variables."
    )
    p = argparse.ArgumentParser(
        prog=PROG,
        usage=f"%(prog)s [flags]\n       %(prog)s {{{','.join(SUBCOMMANDS)}}} ...",
        description=textwrap.fill(description, 78),
        epilog=_subcommands_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the list of subcommands as written
    )
    p.add_argument("--config.file", dest="config_file", metavar="FILE", help="YAML file with accounts")
    p.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        default=None,
        help=f"address for the web interface and telemetry (default {DEFAULT_LISTEN_ADDRESS}; "
        f"{DEMO_LISTEN_ADDRESS} with --demo)",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default=DEFAULT_TELEMETRY_PATH,
        metavar="PATH",
        help=f"path that exposes metrics (default {DEFAULT_TELEMETRY_PATH})",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web config (TLS, basic auth, headers); re-read when it changes",
    )
    p.add_argument(
        "--web.dashboard-url",
        dest="dashboard_url",
        metavar="URL",
        help="Grafana dashboard linked from each account on the status page (var-account=<name> is appended)",
    )
    p.add_argument(
        "--web.runbook-url",
        dest="runbook_url",
        default=DEFAULT_RUNBOOK_URL,
        metavar="URL",
        help=f"the runbook linked from the status page, one anchor per alert (default {DEFAULT_RUNBOOK_URL})",
    )
    p.add_argument(
        "--shard.count", dest="shard_count", type=int, default=1, metavar="N", help="number of shards (default 1)"
    )
    p.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        default=None,
        metavar="I",
        help="this replica's shard, 0..N-1 (default: the StatefulSet ordinal ending the host name)",
    )
    add_connection_share(
        p,
        "share of Bybit's 500 new websocket connections per 5 minutes per IP that this exporter may use, "
        "in (0, 1]; leave the rest to the desk's own bots on the same IP (default 1)",
    )
    p.add_argument(
        "--log.level", dest="log_level", default="info", help="debug, info, warn (or warning) or error (default info)"
    )
    p.add_argument("--log.format", dest="log_format", default="logfmt", help="logfmt or json (default logfmt)")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run against an embedded Bybit simulator with a scripted scenario; no credentials needed",
    )
    p.add_argument("--version", action="version", version=version_text(PROG))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]].run(argv[1:])

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)

    listen = args.listen_address or (DEMO_LISTEN_ADDRESS if args.demo else DEFAULT_LISTEN_ADDRESS)
    flags = dict(
        listen_address=listen, telemetry_path=args.telemetry_path, log_level=args.log_level, log_format=args.log_format
    )
    try:
        if args.demo:
            if args.config_file:
                raise ConfigError(["--demo: runs its own simulated account; do not combine it with --config.file"])
            from .demo import demo_config  # only when asked for (see above)

            config = demo_config(**flags)  # validated like any other configuration
        else:
            config = load_config(args.config_file, **flags)
        shard = Shard(resolve_index(args.shard_index, args.shard_count, socket.gethostname()), args.shard_count)
        pacing = Pacing(budget=budget_for_share(args.connection_share))
        web_config = WebConfigSource(args.web_config_file) if args.web_config_file else None
    # ValueError: the shard and connection-share flags; WebConfigError (a ValueError): the web config.
    except (ConfigError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    config = dataclasses.replace(
        config, accounts=select(config.accounts, [a.name for a in config.accounts], shard.index, shard.count)
    )

    if args.check_config:
        print_config_warnings(config)
        names = ", ".join(f"{a.name} ({a.environment}, {a.mode})" for a in config.accounts)
        print(f"{PROG}: configuration OK: {len(config.accounts)} account(s){shard.describe()}: {names}")
        return 0

    setup_logging(config.log_level, config.log_format, secrets=config.secrets(), api_keys=config.api_keys())
    log_config_warnings(config)
    keep_memory_small()  # before any worker thread starts (see exporter/runtime/allocator.py)
    lean_read_buffers()  # before any TLS connection (see exporter/bybit/tls.py)
    try:
        links = Links(args.dashboard_url, args.runbook_url)
        return asyncio.run(
            serve(config, demo=args.demo, shard=shard, web_config=web_config, links=links, pacing=pacing)
        )
    except KeyboardInterrupt:
        return 0


def print_config_warnings(config: Config) -> None:
    """``--check-config``: what works but should not be so (a secret file others can read), on stderr."""
    for warning in config.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def log_config_warnings(config: Config) -> None:
    for warning in config.warnings:
        log.warning("configuration warning", extra={"warning": warning})


async def serve(
    config: Config,
    *,
    demo: bool = False,
    shard: Shard = ONE_SHARD,
    web_config: WebConfigSource | None = None,
    links: Links | None = None,
    pacing: Pacing | None = None,
) -> int:
    """Run every account and the web server until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on the main thread
            pass
    handle_sighup(loop, web_config)

    demo_env = None
    if demo:
        from .demo import DemoEnvironment  # only when asked for (see main)

        demo_env = DemoEnvironment()
        config = await demo_env.start(config)
    try:
        return await run_exporter(config, stop, shard=shard, web_config=web_config, links=links, pacing=pacing)
    finally:
        if demo_env is not None:
            await demo_env.stop()


def handle_sighup(loop: asyncio.AbstractEventLoop, web_config: WebConfigSource | None) -> None:
    """SIGHUP never stops the exporter (its default would, with exit 129 and no clean close).

    The web config is re-read on SIGHUP (it is also re-read by itself when its files change);
    the accounts are not: they need a restart, and the log line says so.
    """

    def on_sighup() -> None:
        log.info(
            "SIGHUP: re-reading the web config; the accounts are read at start only (restart to change them)"
            if web_config is not None
            else "SIGHUP: nothing to reload (no web config); the accounts are read at start only",
            extra={"signal": "SIGHUP"},
        )
        if web_config is not None:
            web_config.reread()

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, AttributeError):  # not on the main thread, or no SIGHUP
        pass


async def run_exporter(
    config: Config,
    stop: asyncio.Event,
    *,
    shard: Shard = ONE_SHARD,
    web_config: WebConfigSource | None = None,
    links: Links | None = None,
    pacing: Pacing | None = None,
) -> int:
    clock = SYSTEM_CLOCK
    metrics = Metrics(clock=clock.time)
    metrics.set_shard(shard.index, shard.count, len(config.accounts))
    fleet = Fleet(config, metrics, clock=clock, pacing=pacing)
    host, port = parse_listen_address(config.listen_address)
    guard = ConnectionGuard(config=web_config)
    app = make_app(
        metrics,
        fleet,
        telemetry_path=config.telemetry_path,
        clock=clock.time,
        web_config=web_config,
        middlewares=[guard.middleware],
        status=StatusService(metrics, clock=clock, interval=sample_interval(len(config.accounts)), links=links),
        bearer_routes=(LIVENESS_ROUTE,),
    )
    add_liveness_route(app, fleet.guardian)
    try:
        runner, server = await guard.listen(app, host, port)
    except OSError as exc:
        log.error("cannot listen on the web address", extra={"address": config.listen_address, "error": str(exc)})
        return 1
    bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    log.info(
        "listening",
        extra={
            "address": bound or config.listen_address,
            "telemetry_path": config.telemetry_path,
            "tls": bool(web_config and web_config.current().tls),
            "basic_auth": bool(web_config and web_config.auth.enabled),
            "shard": f"{shard.index}/{shard.count}",
            "accounts": len(config.accounts),
            "version": __version__,
        },
    )
    await fleet.start()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await fleet.stop()
        server.close()
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
