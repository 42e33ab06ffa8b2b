"""An account's REST client, built from its configuration in one place.

Here, on the Bybit floor, rather than beside the supervisor's other parts
(:mod:`exporter.monitor.parts`): the drill sits below the monitor and builds its REST client
too, and both build it through :func:`rest_client`.
"""

from __future__ import annotations

import aiohttp

from ..config import AccountConfig
from ..metrics import Metrics
from ..runtime.clock import SYSTEM_CLOCK, Clock
from .pacing import HostBans
from .rest import RestClient


def rest_client(
    account: AccountConfig,
    session: aiohttp.ClientSession,
    *,
    metrics: Metrics,
    clock: Clock = SYSTEM_CLOCK,
    host_bans: HostBans | None = None,
) -> RestClient:
    """The REST client of ``account`` on ``session``; ``host_bans`` is the fleet's shared 403 record
    (a client without one keeps a record of its own)."""
    return RestClient(
        session,
        account=account.name,
        environment=account.environment,
        base_url=account.rest_url,
        api_key=account.api_key,
        api_secret=account.api_secret,
        metrics=metrics,
        clock=clock,
        host_bans=host_bans,
    )
