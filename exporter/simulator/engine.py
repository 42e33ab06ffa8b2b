"""The DCP engine of the simulator, without I/O (the caller passes ``now`` in seconds).

Bybit's rule, per account and product: while at least one connection that subscribed the
product's ``dcp.*`` topic is alive, nothing happens. When the last one dies, a timer of the
product's window starts; a new protected connection that sends a heartbeat ``ping`` before it
runs out resets it; otherwise the product's active orders are cancelled (a *trigger*).

"Dead" is closed, or silent (no client frame) for longer than the connection's idle cut-off.
Unsubscribing a product's ``dcp.*`` topic counts, for that product, as dying.
The engine only decides *when*; the server shell does the cancelling and pushing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRODUCTS = ("SPOT", "DERIVATIVES", "OPTIONS")
TOPIC_PRODUCT = {"dcp.spot": "SPOT", "dcp.future": "DERIVATIVES", "dcp.option": "OPTIONS"}
PRODUCT_CATEGORIES = {
    "SPOT": ("spot",),
    "DERIVATIVES": ("linear", "inverse"),
    "OPTIONS": ("option",),
}
CATEGORIES = tuple(c for p in PRODUCTS for c in PRODUCT_CATEGORIES[p])
MIN_WINDOW, MAX_WINDOW = 3, 300


def valid_window(window) -> bool:
    """A DCP window Bybit accepts: a whole number of seconds in [3, 300] (not a bool)."""
    return isinstance(window, int) and not isinstance(window, bool) and MIN_WINDOW <= window <= MAX_WINDOW


@dataclass
class _Conn:
    account: str
    idle_cutoff: float
    last_activity: float
    products: set[str] = field(default_factory=set)


@dataclass
class _Timer:
    started: float
    deadline: float


@dataclass(frozen=True)
class Trigger:
    """A product whose timer ran out: cancel its active orders now."""

    account: str
    product: str
    at: float


class DcpEngine:
    """Tracks protected connections and DCP timers for every account and product.

    ``window_of(account, product, now)`` returns the effective window in seconds (already
    scaled to wall time by the caller) or ``None`` when DCP is off for that product.
    """

    def __init__(self, window_of) -> None:
        self._window_of = window_of
        self._conns: dict[str, _Conn] = {}
        self._timers: dict[tuple[str, str], _Timer] = {}

    # --- connection lifecycle -------------------------------------------------------
    def open(self, conn_id: str, account: str, now: float, idle_cutoff: float) -> None:
        self._conns[conn_id] = _Conn(account, idle_cutoff, now)

    def activity(self, conn_id: str, now: float) -> None:
        """Any frame from the client keeps the connection alive."""
        conn = self._conns.get(conn_id)
        if conn is not None:
            conn.last_activity = now

    def subscribe(self, conn_id: str, product: str, now: float) -> None:
        """The connection subscribed ``dcp.<product>``: it is now a protected connection."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        conn.last_activity = now
        conn.products.add(product)

    def ping(self, conn_id: str, now: float) -> None:
        """A heartbeat ping: a running timer of each product this connection protects is reset."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        conn.last_activity = now
        for product in conn.products:
            self._timers.pop((conn.account, product), None)

    def unsubscribe(self, conn_id: str, product: str, now: float) -> None:
        """The connection unsubscribed ``dcp.<product>``: it no longer protects the product,
        which for that product is the same as the connection dying."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        conn.last_activity = now
        if product in conn.products:
            conn.products.discard(product)
            self._lost(conn.account, product, now)

    def close(self, conn_id: str, now: float) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is not None:
            self._on_death(conn, now)

    def _on_death(self, conn: _Conn, at: float) -> None:
        for product in conn.products:
            self._lost(conn.account, product, at)

    def _lost(self, account: str, product: str, at: float) -> None:
        """A protected connection of ``product`` went away at ``at``: if it was the last one
        alive, the product's timer starts."""
        key = (account, product)
        if key in self._timers:
            return  # the timer keeps counting from the first disconnection
        if self._alive_protected(account, product, at):
            return
        window = self._window_of(account, product, at)
        if window is None:
            return  # DCP off for this product: never triggers
        self._timers[key] = _Timer(started=at, deadline=at + window)

    def _alive_protected(self, account: str, product: str, at: float) -> bool:
        """A protected connection still alive at ``at``: one already silent past its idle
        cut-off but not yet expired does not count."""
        return any(
            c.account == account and product in c.products and c.last_activity + c.idle_cutoff > at
            for c in self._conns.values()
        )

    # --- time -----------------------------------------------------------------------
    def expire_idle(self, now: float) -> list[str]:
        """Connections silent past their idle cut-off: they are dead from the moment the
        cut-off passed. Returns their ids so the shell can close the sockets."""
        dead = [cid for cid, c in self._conns.items() if now >= c.last_activity + c.idle_cutoff]
        for cid in dead:
            conn = self._conns.pop(cid)
            self._on_death(conn, conn.last_activity + conn.idle_cutoff)
        return dead

    def due(self, now: float) -> list[Trigger]:
        """Timers that ran out. A product switched off meanwhile does not trigger."""
        fired: list[Trigger] = []
        for key, timer in list(self._timers.items()):
            if now >= timer.deadline:
                del self._timers[key]
                if self._window_of(key[0], key[1], now) is not None:
                    fired.append(Trigger(key[0], key[1], timer.deadline))
        return fired

    def tick(self, now: float) -> tuple[list[str], list[Trigger]]:
        """Advance to ``now``: expire idle connections, then fire due timers."""
        dead = self.expire_idle(now)
        return dead, self.due(now)

    def next_deadline(self) -> float | None:
        times = [t.deadline for t in self._timers.values()]
        times += [c.last_activity + c.idle_cutoff for c in self._conns.values()]
        return min(times) if times else None

    # --- introspection --------------------------------------------------------------
    def timer(self, account: str, product: str) -> tuple[float, float] | None:
        t = self._timers.get((account, product))
        return None if t is None else (t.started, t.deadline)
