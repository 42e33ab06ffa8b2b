"""Measure Bybit, not ourselves: the exporter's RTT and REST duration against an independent client.

N accounts on a fake Bybit in its own process, with a fixed pong delay; the exporter (a Fleet and
its web app) in this process; a probe in a third process pinging one more account, reading the
same REST endpoint and scraping /metrics every 10 s like Prometheus (see tests/support/wire_timing.py).
Prints both sides' mean RTT and REST duration, the exporter's pool wait, the TCP connections it
opened in the window, its event-loop lag and the scrapes. The per-host connection budget is
lifted for the fleet (Bybit's 500 new connections per 5 minutes would only make the start wait).

    python3 benchmarks/bench_wire_timing.py [--accounts 1000] [--pong-delay 0.05] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))  # the harness the test uses too

from wire_timing import Setup, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--pong-delay", type=float, default=0.05, help="seconds (default 0.05)")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--poll-interval", type=float, default=30.0)
    parser.add_argument("--scrape-interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    args = parser.parse_args()
    setup = Setup(
        accounts=args.accounts,
        pong_delay=args.pong_delay,
        ping_interval=args.ping_interval,
        poll_interval=args.poll_interval,
        scrape_interval=args.scrape_interval,
        window=args.seconds,
    )
    print("\n".join(asyncio.run(measure(setup)).lines()))


if __name__ == "__main__":
    main()
