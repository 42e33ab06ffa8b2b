"""An in-process exporter web server for the web tests: the real app behind the real guard, on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from exporter.metrics import Metrics
from exporter.web.app import make_app
from exporter.web.config import WebConfigSource
from exporter.web.guard import ConnectionGuard


class NoAccounts:
    ready = True

    def account_names(self) -> list[str]:
        return []


@dataclass
class Served:
    guard: ConnectionGuard
    port: int

    def url(self, path: str = "/metrics", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextlib.asynccontextmanager
async def serving(web_config: WebConfigSource | None = None, **guard_options) -> AsyncIterator[Served]:
    guard = ConnectionGuard(config=web_config, **guard_options)
    metrics = Metrics()
    metrics.set_shard(0, 1, 0)
    app = make_app(metrics, NoAccounts(), web_config=web_config, middlewares=[guard.middleware])
    runner, server = await guard.listen(app, "127.0.0.1", 0)
    try:
        yield Served(guard, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await runner.cleanup()
