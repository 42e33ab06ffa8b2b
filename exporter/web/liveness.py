"""The guardian's HTTP liveness route: a REST-only bot's sign of life.

It lives with the rest of the HTTP side; what a sign of life does (arm, keep armed) is the
guardian's (:class:`~exporter.monitor.guardian.Guardian`), which this route only feeds.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ..monitor.guardian import Guardian

LIVENESS_PATH = "/api/v1/accounts/{account}/liveness"
LIVENESS_ROUTE = "guardian-liveness"  # the route's name: the app leaves it to its bearer token (no basic auth)
# A sign of life needs no body: one is never read, and one past this (or of no stated length) is
# refused with 413 before anything else, the connection closed after the answer (aiohttp discards
# what is left of the body as it comes, never buffering it).
LIVENESS_MAX_BODY = 64 << 10


def add_liveness_route(app: web.Application, guardian_of: Callable[[str], Guardian | None]) -> None:
    """``POST /api/v1/accounts/<account>/liveness`` with ``Authorization: Bearer <token>``: 204, 401, 404,
    or 413 for a body past :data:`LIVENESS_MAX_BODY` or chunked (of no stated length).

    The bearer token is this route's only credential: give ``LIVENESS_ROUTE`` to
    :func:`exporter.web.app.make_app`'s ``bearer_routes`` so a web config's basic auth leaves it alone.
    """

    async def liveness(request: web.Request) -> web.Response:
        length = request.content_length
        if (length is None and request.body_exists) or (length is not None and length > LIVENESS_MAX_BODY):
            refused = web.Response(
                status=413, text=f"a sign of life needs no body (at most {LIVENESS_MAX_BODY} bytes)\n"
            )
            refused.force_close()  # no keep-alive: the rest of the body is read and dropped, never kept
            return refused
        guardian = guardian_of(request.match_info["account"])
        if guardian is None or guardian.liveness.source != "http":
            return web.Response(status=404, text="no guardian with http liveness for this account\n")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not guardian.accepts(token.strip() if scheme.lower() == "bearer" else ""):
            return web.Response(
                status=401, text="bad or missing bearer token\n", headers={"WWW-Authenticate": "Bearer"}
            )
        guardian.sign_of_life()
        return web.Response(status=204)

    app.router.add_post(LIVENESS_PATH, liveness, name=LIVENESS_ROUTE)
