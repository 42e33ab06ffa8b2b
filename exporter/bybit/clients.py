"""An account's REST client, built from its configuration in one place.

Here, on the Bybit floor, rather than beside the supervisor's other parts
(:mod:`exporter.monitor.parts`): the drill sits below the monitor and builds its REST client
too, and both build it through :func:`rest_client`.
"""

from __future__ import annotations

import aiohttp

from ..config import AccountConfig
from ..http.pool import Transport
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .pacing import HostBans
from .rest import RestClient, RestObserver
from .timeframe import TimeFrame


def rest_client(
    account: AccountConfig,
    session: aiohttp.ClientSession | Transport,
    *,
    observer: RestObserver,
    clock: Clock = SYSTEM_CLOCK,
    host_bans: HostBans | None = None,
    timeframe: TimeFrame | None = None,
) -> RestClient:
    """The REST client of ``account`` on ``session`` (an aiohttp session or a transport), telling ``observer`` what each call did (the
    exporter's metrics, the drill's or the doctor's own); ``host_bans`` is the fleet's shared 403
    record (a client without one keeps a record of its own); ``timeframe`` the account's one
    offset to Bybit's clock, shared with its stream and backfill (without one, its own)."""
    return RestClient(
        session,
        account=account.name,
        environment=account.environment,
        base_url=account.rest_url,
        api_key=account.api_key,
        api_secret=account.api_secret,
        observer=observer,
        clock=clock,
        host_bans=host_bans,
        timeframe=timeframe,
    )
