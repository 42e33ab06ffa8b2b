"""The private stream offers no permessage-deflate: a zlib context pair costs ~190 KB a socket,
more than everything else one watched account holds, for frames of a few hundred bytes."""

import asyncio

from helpers import bare_stream, eventually
from websockets.asyncio.server import ServerConnection, serve

from exporter.metrics import Metrics


async def test_the_handshake_offers_no_compression_extension():
    offered: list[str | None] = []

    async def handler(ws: ServerConnection) -> None:
        offered.append(ws.request.headers.get("Sec-WebSocket-Extensions") if ws.request else "?")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        stream = bare_stream(f"ws://127.0.0.1:{port}", Metrics(), handshake_timeout=2.0)
        task = asyncio.create_task(stream.run())
        try:
            await eventually(lambda: offered, 5.0, 0.01, "a handshake")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert offered[0] is None
