"""``bybit-dcp-exporter simulate``: run the fake Bybit V5 on loopback until SIGINT/SIGTERM.

Also runnable as ``python3 -m exporter.simulator.cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import ssl
import sys
from pathlib import Path

import yaml

from .server import Simulator, is_loopback, server_tls
from .signatures import new_api_secret

EXIT_USAGE = 2
# What GET /v5/user/query-api and GET /v5/account/info report (Simulator.set_key, set_account_mode).
KEY_FIELDS = ("read_only", "permissions", "ips", "expired_at", "unified_margin_status")


class UsageError(Exception):
    pass


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]")
    if not is_loopback(host):
        raise UsageError(f"--listen {value!r}: the simulator only listens on loopback (127.0.0.1, ::1, localhost)")
    try:
        port_n = int(port)
    except ValueError:
        raise UsageError(f"--listen {value!r}: the port must be a number") from None
    if not 0 <= port_n <= 65535:
        raise UsageError(f"--listen {value!r}: the port must be in 0..65535")
    return host, port_n


def load_accounts(path: str) -> list[dict]:
    """A YAML list of ``{api_key, api_secret | rsa_public_key_file, name, dcp: {PRODUCT: window}}``,
    each optionally with the key's ``read_only``, ``permissions``, ``ips``, ``expired_at`` and the
    account's ``unified_margin_status``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--accounts {path}: cannot read: {exc.strerror}") from None
    except RecursionError:
        raise UsageError(f"--accounts {path}: nested too deeply") from None
    except yaml.YAMLError as exc:  # its text quotes the lines around the problem: secrets included
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"--accounts {path}: not valid YAML{at}; fix the syntax") from None
    if not isinstance(data, list) or not data:
        raise UsageError(f"--accounts {path}: expected a non-empty YAML list of accounts")
    accounts = []
    base = Path(path).parent
    for i, entry in enumerate(data):
        where = f"--accounts {path}: entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("api_key"), str):
            raise UsageError(f"{where}: needs an api_key string")
        spec = {"api_key": entry["api_key"], "name": entry.get("name"), "dcp": entry.get("dcp")}
        for key_field in KEY_FIELDS:
            if entry.get(key_field) is not None:
                spec[key_field] = entry[key_field]
        if entry.get("rsa_public_key_file"):
            key_path = Path(entry["rsa_public_key_file"])
            if not key_path.is_absolute():
                key_path = base / key_path
            try:
                spec["rsa_public_key_pem"] = key_path.read_text()
            except OSError as exc:
                raise UsageError(f"{where}: rsa_public_key_file: {exc.strerror}") from None
        else:
            spec["api_secret"] = entry.get("api_secret")
        dcp = spec["dcp"]
        if dcp is not None and not isinstance(dcp, dict):
            raise UsageError(f"{where}: dcp must be a mapping like {{DERIVATIVES: 10, SPOT: 10}}")
        accounts.append(spec)
    return accounts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bybit-dcp-exporter simulate",
        description="Run a fake Bybit V5 (REST, private websocket, DCP engine, fault injection) on loopback.",
    )
    p.add_argument("--listen", default="127.0.0.1:8090", help="loopback HOST:PORT to listen on (default %(default)s)")
    p.add_argument("--api-key", help="key of a single account (with --api-secret)")
    p.add_argument("--api-secret", help="HMAC secret of that account")
    p.add_argument("--accounts", metavar="FILE", help="YAML list of accounts")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply DCP timers by this (default 1)")
    p.add_argument(
        "--idle-cutoff", type=float, default=None, help="seconds of client silence that count as a dead connection"
    )
    p.add_argument("--settle-delay", type=float, default=0.0, help="seconds before a newly set window takes effect")
    p.add_argument(
        "--tls-cert", metavar="FILE", help="serve https:// and wss:// with this PEM certificate (and --tls-key)"
    )
    p.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")
    return p


def tls_from_args(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server context of ``--tls-cert``/``--tls-key``; None without them."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not args.tls_cert:
        return None
    try:
        return server_tls(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert/--tls-key: cannot load them ({exc})") from None


def make_simulator(args: argparse.Namespace, out=sys.stdout) -> Simulator:
    if bool(args.api_key) != bool(args.api_secret):
        raise UsageError("--api-key and --api-secret go together")
    if args.time_scale <= 0:
        raise UsageError("--time-scale must be positive")
    if args.idle_cutoff is not None and args.idle_cutoff <= 0:
        raise UsageError("--idle-cutoff must be positive")
    if args.settle_delay < 0:
        raise UsageError("--settle-delay must not be negative")
    sim = Simulator(time_scale=args.time_scale, settle_delay=args.settle_delay, idle_cutoff=args.idle_cutoff)
    specs = load_accounts(args.accounts) if args.accounts else []
    if args.api_key:
        specs.append({"api_key": args.api_key, "api_secret": args.api_secret})
    try:
        for spec in specs:
            sim.add_account(**spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not specs:
        key, secret = "demo-" + secrets.token_hex(6), new_api_secret()
        sim.add_account(key, secret, name="demo")
        print(f"demo account: api_key={key} api_secret={secret}", file=out, flush=True)
    return sim


async def serve(sim: Simulator, host: str, port: int, out=sys.stdout, tls: ssl.SSLContext | None = None) -> None:
    await sim.start(host, port, tls=tls)
    print(f"simulator: REST {sim.rest_url}  websocket {sim.ws_url}  control {sim.control_url}", file=out, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        tls = tls_from_args(args)
        sim = make_simulator(args)
    except UsageError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(serve(sim, host, port, tls=tls))
    except OSError as exc:
        print(f"simulate: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
