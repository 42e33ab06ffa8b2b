"""The metric contract as data: one :class:`MetricSpec` per family, in :data:`SPECS`.

Everything else is made from this table, so a metric is written down once: :class:`.Metrics`
builds its families from it (one attribute per spec, named by ``attr``, registered in table
order, which is the exposition's order) and creates the series known in advance by each
spec's :class:`AtZero` rule; ``docs/metrics.md`` is generated from it
(``python3 -m exporter.metrics.docs``); the contract test checks every spec's type, labels and
series from the start against the exposition; and the status board names the series it reads
through these objects (``specs.WS_CONNECTED.sample``) rather than through strings.

Dashboards and alert rules depend on the names and labels: add specs freely, never rename one.
This module is data only: it imports nothing of the project, so anything may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..dcp import REASSERT_BLOCK_REASONS

# Prometheus types.
GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"

# Where a family's values come from.
RECORDED = "recorded"  # the exporter's code records them (set, inc, observe)
AT_SCRAPE = "at_scrape"  # seconds since a unix time each account gives, worked out when Prometheus scrapes
SUM = "sum"  # another family (``of``) summed over its last label, at scrape time
PROCESS = "process"  # prometheus_client's process collector (Linux); no attribute of Metrics
TASKS = "tasks"  # the asyncio tasks of the exporter's event loop, counted when Prometheus scrapes

# Who creates the series of an :class:`AtZero` rule.
ADD_ACCOUNT = "add_account"  # Metrics.add_account, for every watched account
START = "start"  # Metrics itself, when it is built
STREAM = "stream"  # the account's private stream, when it starts
GUARDIAN = "guardian"  # the account's guardian (guardian liveness configured), when it starts


@dataclass(frozen=True)
class AtZero:
    """Which series of a family exist before anything is recorded in it, and who makes them.

    Exported from the start, so ``increase()`` sees the first event and a missing series means
    a missing account, not "nothing happened yet". Only where the labels are known in advance
    and a 0 is true: not ``bybit_dcp_enabled``, which is unknown before the first good poll.
    """

    by: str = ADD_ACCOUNT
    # A label: one series for each of its known values (product, category, endpoint, reason, to);
    # "" for the account's one series. The values are :data:`.registry.DOMAINS`.
    each: str = ""
    # Narrows ``each``: "desired" (the products with a desired window), "guarded" (the products
    # the guardian guards).
    only: str = ""
    # The series' first value: a number, or the name of the ``add_account`` argument it comes
    # from (``desired_windows``: the product's window; a value not given makes no series).
    value: float | str = 0
    # The values of the family's last label, each a series beside every ``each`` value (the
    # reasons re-assertion can stand down for, beside each desired product).
    and_each: tuple[str, ...] = ()


PER_ACCOUNT = AtZero()
EACH_PRODUCT = AtZero(each="product")
EACH_CATEGORY = AtZero(each="category")
EACH_ENDPOINT = AtZero(each="endpoint")
EACH_REASON = AtZero(each="reason")
DESIRED_PRODUCTS = AtZero(each="product", only="desired")


def configured(argument: str) -> AtZero:
    """The configured value ``add_account`` is given (no series when it is not)."""
    return AtZero(value=argument)


# The groups of docs/metrics.md, in its order.
GROUP_CONFIG = "DCP configuration (from `GET /v5/account/query-dcp-info`)"
GROUP_REST = "REST API"
GROUP_STREAM = "Private stream and heartbeat"
GROUP_TRIGGERS = "DCP triggers"
GROUP_GUARDIAN = "Guardian liveness and drills"
GROUP_REASSERT = "Re-assertion of the desired window"
GROUP_IDENTITY = "Identity"
GROUP_PROCESS = "The process (prometheus_client's standard collector, Linux)"
GROUPS = (
    GROUP_CONFIG,
    GROUP_REST,
    GROUP_STREAM,
    GROUP_TRIGGERS,
    GROUP_GUARDIAN,
    GROUP_REASSERT,
    GROUP_IDENTITY,
    GROUP_PROCESS,
)

RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
HEARTBEAT_GAP_BUCKETS = (1, 2.5, 5, 10, 15, 20, 25, 30, 45, 60, 120, 300)
API_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONNECTION_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ACCOUNT = ("account",)
BY_PRODUCT = ("account", "product")
BY_CATEGORY = ("account", "category")
BY_ENDPOINT = ("account", "endpoint")


@dataclass(frozen=True, eq=False)
class MetricSpec:
    """One metric family: what Prometheus sees (name, type, labels, help) and how it is made."""

    attr: str  # the Metrics attribute holding it ("" for the process collector's)
    name: str  # the family's name; a counter's samples add ``_total``
    kind: str  # GAUGE, COUNTER or HISTOGRAM
    labels: tuple[str, ...]
    help: str  # the exposition's HELP line
    group: str  # its table in docs/metrics.md
    doc: str = ""  # docs/metrics.md's longer text (Markdown); the help when empty
    buckets: tuple[float, ...] | None = None  # a histogram's upper bounds (+Inf added)
    at_zero: AtZero | None = None  # None: a series appears with its first value
    source: str = RECORDED
    of: MetricSpec | None = None  # a SUM's summed family

    # Worked out once: the status board looks series up by these names thousands of times a sample.
    @cached_property
    def sample(self) -> str:
        """The name of a gauge's or counter's sample (a counter's ends in ``_total``)."""
        return self.name + "_total" if self.kind == COUNTER else self.name

    @cached_property
    def count_sample(self) -> str:
        """A histogram's ``_count`` sample."""
        return self.name + "_count"

    @cached_property
    def sum_sample(self) -> str:
        """A histogram's ``_sum`` sample."""
        return self.name + "_sum"

    @property
    def description(self) -> str:
        return self.doc or self.help

    def __repr__(self) -> str:
        return f"MetricSpec({self.name})"


# ---------------------------------------------------------------- DCP configuration

UP = MetricSpec(
    "up",
    "bybit_dcp_up",
    GAUGE,
    ACCOUNT,
    "1 if the last DCP-config poll succeeded.",
    GROUP_CONFIG,
    "1 if the last DCP-config poll succeeded, else 0 (bad key, network, rate limit...).",
    at_zero=PER_ACCOUNT,
)
ENABLED = MetricSpec(
    "enabled",
    "bybit_dcp_enabled",
    GAUGE,
    BY_PRODUCT,
    "1 if Bybit lists the product with DCP ON.",
    GROUP_CONFIG,
    "1 if Bybit lists the product with DCP `ON`; 0 if Bybit does not list it (DCP is enabled by the account "
    "manager). **Absent while the state is unknown**: before the first good poll and while polls fail "
    '(`bybit_dcp_up == 0`), never a 0 that would say "not enabled". A good poll with an empty `dcpInfos` '
    "(0 for every product) most likely means DCP is not available or not enabled for the account (Bybit "
    "offers it to institutional accounts only); the log says so once and the landing page says so.",
)
WINDOW = MetricSpec(
    "window",
    "bybit_dcp_window_seconds",
    GAUGE,
    BY_PRODUCT,
    "DCP window Bybit reports for an enabled product.",
    GROUP_CONFIG,
    "The window Bybit reports. Only for products listed `ON`; the series disappears when a product is no "
    "longer listed.",
)
DESIRED_WINDOW = MetricSpec(
    "desired_window",
    "bybit_dcp_desired_window_seconds",
    GAUGE,
    BY_PRODUCT,
    "DCP window the configuration asks for.",
    GROUP_CONFIG,
    "The window the configuration asks for (`desired_windows`); only for those products.",
    at_zero=AtZero(each="product", only="desired", value="desired_windows"),
)
DRIFT = MetricSpec(
    "drift",
    "bybit_dcp_window_drift",
    GAUGE,
    BY_PRODUCT,
    "1 if a desired window is set and Bybit reports another window or none.",
    GROUP_CONFIG,
    "1 if a desired window is set and Bybit reports another window, or none at all. Only for the products "
    "with a desired window.",
    at_zero=DESIRED_PRODUCTS,
)
LAST_POLL_SUCCESS = MetricSpec(
    "last_poll_success",
    "bybit_dcp_last_poll_success_timestamp_seconds",
    GAUGE,
    ACCOUNT,
    "Unix time of the last good DCP-config poll.",
    GROUP_CONFIG,
    "Unix time of the last successful poll. `time() - this` is the age of what the other DCP gauges say.",
)
POLL_INTERVAL = MetricSpec(
    "poll_interval",
    "bybit_dcp_poll_interval_seconds",
    GAUGE,
    ACCOUNT,
    "Configured DCP-config poll interval.",
    GROUP_CONFIG,
    "The configured poll interval (for alert thresholds relative to it).",
    at_zero=configured("poll_interval"),
)
LAST_POLL_ERROR = MetricSpec(
    "last_poll_error",
    "bybit_dcp_last_poll_error_info",
    GAUGE,
    ("account", "code", "hint"),
    "1 while the DCP-config poll fails: the failure's code and what to do (hint); gone after a good poll.",
    GROUP_CONFIG,
    "1 while the DCP-config poll fails: the failure's `code` (as on `bybit_dcp_api_errors_total`) and a "
    "one-line `hint` (what to do, e.g. `10004`: check the API secret; `10017`: check rest_url, wrong host or "
    "environment). Gone after a good poll.",
)

# The account mode, from GET /v5/account/info (read every few minutes, beside the DCP poll)
UNIFIED_MARGIN_STATUS = MetricSpec(
    "unified_margin_status",
    "bybit_dcp_account_unified_margin_status",
    GAUGE,
    ACCOUNT,
    "The account mode Bybit reports (unifiedMarginStatus): 1 classic, 3 UTA 1.0, 4 UTA 1.0 pro, "
    "5 UTA 2.0, 6 UTA 2.0 pro; the last value read.",
    GROUP_CONFIG,
    "Bybit's account mode (`unifiedMarginStatus` of `GET /v5/account/info`: 1 classic, 3 UTA 1.0, 4 UTA 1.0 "
    "pro, 5 UTA 2.0, 6 UTA 2.0 pro), read every 5 minutes; the last value read, kept while a read fails.",
)
UNPROTECTED_CATEGORY = MetricSpec(
    "unprotected_category",
    "bybit_dcp_unprotected_category",
    GAUGE,
    BY_CATEGORY,
    "1 where DCP is enabled for the category's product but the account mode keeps DCP from cancelling "
    "its orders (inverse under UTA 1.0), else 0; only for categories the mode decides (inverse).",
    GROUP_CONFIG,
    "1 where DCP is on for the category's product but the account mode keeps it from cancelling the "
    "category's orders (inverse under UTA 1.0), else 0; `inverse` only, and absent until both the mode and "
    "a good DCP poll are known ([observability.md](observability.md)).",
)

# ---------------------------------------------------------------- REST API

API_REQUESTS = MetricSpec(
    "api_requests",
    "bybit_dcp_api_requests",
    COUNTER,
    BY_ENDPOINT,
    "REST calls made.",
    GROUP_REST,
    "REST requests sent (a retry after a clock resync counts twice). Calls refused locally while rate "
    "limited are not sent and not counted; after an HTTP 403 (Bybit's IP ban) every endpoint of every "
    "account on that host waits 10 minutes.",
    at_zero=EACH_ENDPOINT,
)
API_ERRORS = MetricSpec(
    "api_errors",
    "bybit_dcp_api_errors",
    COUNTER,
    ("account", "endpoint", "code"),
    "Failed REST calls; code is a documented Bybit retCode, an HTTP status, 'timeout', 'network', "
    "'invalid' (no usable result), 'redirect' (never followed) or 'other'.",
    GROUP_REST,
    "Failed requests. `code` is Bybit's `retCode` (`10002` timestamp, `10003` invalid key, `10004` bad "
    "signature, `10005` permission, `10006` rate limit, `10010` IP not allowed, `10016` server error...), an "
    "HTTP status (`403` IP rate limit, `5xx`), `timeout`, `network` (connection failed), `invalid` (an answer "
    "without a usable result), `redirect` (never followed), `too_large` (a body past 4 MiB, received or "
    "inflated: dropped unread), or `other` for any undocumented code, so the "
    "label set stays bounded.",
)
API_FAILURES = MetricSpec(
    "api_failures",
    "bybit_dcp_api_failures",
    COUNTER,
    BY_ENDPOINT,
    "Failed REST calls, all codes together; 0 from the start for every known endpoint.",
    GROUP_REST,
    "`bybit_dcp_api_errors_total` summed over codes, at 0 for every known endpoint from the start: a code's "
    "own series appears only with its first error, which `increase()` cannot see; this one sees it.",
    at_zero=EACH_ENDPOINT,
    source=SUM,
    of=API_ERRORS,
)
# Per environment and endpoint, not per account: the latency is Bybit's and the network's, the
# same for every account on a host, and per account it was 30 % of a 1,000-account scrape.
# Per-account failures are in bybit_dcp_api_errors_total.
API_DURATION = MetricSpec(
    "api_duration",
    "bybit_dcp_api_request_duration_seconds",
    HISTOGRAM,
    ("environment", "endpoint"),
    "REST call latency, from the moment the call has its connection to the end of the body "
    "(the wait for a pool slot is bybit_dcp_api_connection_wait_seconds).",
    GROUP_REST,
    "Request latency, including failed requests: from the moment the call has its connection to the end of "
    "the body, so it describes Bybit and the network, not the exporter's queue (see "
    "[measurement.md](measurement.md)). Not per account: the latency is the same for every account on a "
    "host, and per account it made 30 % of a 1,000-account scrape ([performance.md](performance.md)).",
    buckets=API_DURATION_BUCKETS,
)
API_CONNECTION_WAIT = MetricSpec(
    "api_connection_wait",
    "bybit_dcp_api_connection_wait_seconds",
    HISTOGRAM,
    (),
    "Wait for a free connection in the REST pool before a call (0 when one was free): the exporter's own queue.",
    GROUP_REST,
    "The wait for a free connection in the REST pool before a call, 0 when one was free: the exporter's own "
    "queue, kept out of the request duration.",
    buckets=CONNECTION_WAIT_BUCKETS,
    at_zero=AtZero(by=START),
)
API_CONNECTIONS_OPENED = MetricSpec(
    "api_connections_opened",
    "bybit_dcp_api_connections_opened",
    COUNTER,
    (),
    "TCP connections the REST pool opened; flat in steady state (keep-alive outlives the poll interval).",
    GROUP_REST,
    "TCP connections the REST pool opened. Connections are kept alive for twice the longest poll interval "
    "(at least 60 s), so in steady state this stays flat; a steady rise means the server (or something "
    "between) closes idle connections sooner.",
    at_zero=AtZero(by=START),
)
RATE_LIMIT_REMAINING = MetricSpec(
    "rate_limit_remaining",
    "bybit_dcp_api_rate_limit_remaining",
    GAUGE,
    BY_ENDPOINT,
    "Requests left in the window, from X-Bapi-Limit-Status.",
    GROUP_REST,
    "Requests left in the current window, from `X-Bapi-Limit-Status`.",
)
RATE_LIMIT = MetricSpec(
    "rate_limit",
    "bybit_dcp_api_rate_limit",
    GAUGE,
    BY_ENDPOINT,
    "Requests allowed per window, from X-Bapi-Limit.",
    GROUP_REST,
    "Requests allowed per window, from `X-Bapi-Limit`.",
)
CLOCK_SKEW = MetricSpec(
    "clock_skew",
    "bybit_dcp_clock_skew_seconds",
    GAUGE,
    ACCOUNT,
    "Bybit time minus local time.",
    GROUP_REST,
    "Bybit's time minus the local time, from the `time` field of every REST answer (midpoint of the "
    "request). Bybit refuses signed requests when the local clock is more than the receive window (5 s) "
    "behind or 1 s ahead.",
)
CLOCK_SKEW_REFUSED = MetricSpec(
    "clock_skew_refused",
    "bybit_dcp_clock_skew_refused",
    COUNTER,
    ("account", "source"),
    "Readings of Bybit's clock refused as too far off (never applied), by source.",
    GROUP_REST,
    "Readings of Bybit's clock refused and never applied, by `source`: `server_time` (`GET /v5/market/time` "
    "more than a day from the local clock) or `pong` (a pong's `args[0]` more than 5 minutes from the last "
    "server time). The REST signing, the stream's auth expiry and the backfill keep the offset they had; see "
    "[stream.md](stream.md#one-time-frame).",
    at_zero=AtZero(each="source"),
)
INVALID_VALUES = MetricSpec(
    "invalid_values",
    "bybit_dcp_invalid_values",
    COUNTER,
    ("account", "field"),
    "Numbers from Bybit outside their sane range (a timestamp, a reset time, a header count), "
    "by field; each was left unused.",
    GROUP_TRIGGERS,
    "Numbers from Bybit outside their sane range (a timestamp, a reset time, a header count; see "
    "[hostile-input.md](hostile-input.md)), each left unused.",
)
BACKFILL_FAILURES = MetricSpec(
    "backfill_failures",
    "bybit_dcp_backfill_failures",
    COUNTER,
    BY_CATEGORY,
    "Order-history backfills of one category that stopped early (an error or an unusable answer).",
    GROUP_TRIGGERS,
    "Order-history backfills of one category that stopped early (an error or an unusable answer); the other "
    "categories go on.",
    at_zero=EACH_CATEGORY,
)

# ---------------------------------------------------------------- private stream

WS_CONNECTED = MetricSpec(
    "ws_connected",
    "bybit_dcp_ws_connected",
    GAUGE,
    ACCOUNT,
    "1 while the private stream is authenticated and subscribed.",
    GROUP_STREAM,
    at_zero=PER_ACCOUNT,
)
WS_RECONNECTS = MetricSpec(
    "ws_reconnects",
    "bybit_dcp_ws_reconnects",
    COUNTER,
    ("account", "reason"),
    "Private-stream reconnects by reason.",
    GROUP_STREAM,
    "Reconnects by reason: `closed` (the server or network closed it), `pong_timeout` (no pong in time), "
    "`error` (could not connect, protocol error), `auth_failed` (key or signature refused), "
    "`subscribe_failed`, `redirect` (the server redirected; never followed).",
    at_zero=EACH_REASON,
)
WS_RTT = MetricSpec(
    "ws_rtt",
    "bybit_dcp_ws_ping_rtt_seconds",
    HISTOGRAM,
    ACCOUNT,
    "JSON ping to pong round-trip time, from the ping written to the pong read off the socket.",
    GROUP_STREAM,
    "Round-trip time from a JSON `ping` to its `pong`: from the moment the ping is written to the moment the "
    "pong is read off the socket, before any queue in the exporter.",
    buckets=RTT_BUCKETS,
    at_zero=PER_ACCOUNT,
)
WS_LAST_PONG = MetricSpec(
    "ws_last_pong",
    "bybit_dcp_ws_last_pong_timestamp_seconds",
    GAUGE,
    ACCOUNT,
    "Unix time of the last pong.",
    GROUP_STREAM,
)
WS_HEARTBEAT_GAP = MetricSpec(
    "ws_heartbeat_gap",
    "bybit_dcp_ws_heartbeat_gap_seconds",
    HISTOGRAM,
    ACCOUNT,
    "Each gap between consecutive pongs, across reconnects.",
    GROUP_STREAM,
    "Each gap between consecutive pongs, across reconnects: the longest silence Bybit saw from this connection.",
    buckets=HEARTBEAT_GAP_BUCKETS,
    at_zero=PER_ACCOUNT,
)
WS_PONG_TIMEOUTS = MetricSpec(
    "ws_pong_timeouts",
    "bybit_dcp_ws_pong_timeouts",
    COUNTER,
    ACCOUNT,
    "Pings that got no pong in time.",
    GROUP_STREAM,
    "Pings that got no pong within `pong_timeout`.",
    at_zero=PER_ACCOUNT,
)
WS_DCP_SUBSCRIBED = MetricSpec(
    "ws_dcp_subscribed",
    "bybit_dcp_ws_dcp_subscribed",
    GAUGE,
    BY_PRODUCT,
    "1 while this exporter's connection holds an acknowledged dcp.* subscription (guardian mode).",
    GROUP_STREAM,
    "1 while this exporter's own connection holds an acknowledged `dcp.*` subscription (guardian mode only; "
    "always 0 in observer mode). While it is 1, DCP for that product will not fire as long as the exporter "
    "lives.",
    at_zero=EACH_PRODUCT,
)
WS_INVALID_MESSAGES = MetricSpec(
    "ws_invalid_messages",
    "bybit_dcp_ws_invalid_messages",
    COUNTER,
    ACCOUNT,
    "Frames that could not be understood.",
    GROUP_STREAM,
    "Frames that could not be understood (skipped; the connection stays up).",
    at_zero=PER_ACCOUNT,
)
WS_PING_INTERVAL = MetricSpec(
    "ws_ping_interval",
    "bybit_dcp_ws_ping_interval_seconds",
    GAUGE,
    ACCOUNT,
    "Configured heartbeat (JSON ping) interval.",
    GROUP_STREAM,
    "The configured ping interval.",
    at_zero=configured("ping_interval"),
)
WS_PONG_TIMEOUT = MetricSpec(
    "ws_pong_timeout",
    "bybit_dcp_ws_pong_timeout_seconds",
    GAUGE,
    ACCOUNT,
    "Configured wait for a pong before reconnecting.",
    GROUP_STREAM,
    "The configured pong timeout.",
    at_zero=configured("pong_timeout"),
)
PING_GAP = MetricSpec(
    "ping_gap",
    "bybit_dcp_ws_ping_gap_seconds",
    GAUGE,
    ACCOUNT,
    "Seconds since the last pong on the account's private stream, computed at scrape time.",
    GROUP_STREAM,
    "Seconds since the last pong (or since the stream started, before any pong), computed when Prometheus "
    "scrapes: it keeps growing while the connection is silent. Compare it with `bybit_dcp_window_seconds`.",
    at_zero=AtZero(by=STREAM),
    source=AT_SCRAPE,
)

# ---------------------------------------------------------------- DCP triggers

CANCELLED_ORDERS = MetricSpec(
    "cancelled_orders",
    "bybit_dcp_cancelled_orders",
    COUNTER,
    BY_CATEGORY,
    "Orders cancelled with cancelType CancelByDCP, each order once.",
    GROUP_TRIGGERS,
    "Orders cancelled with `cancelType: CancelByDCP`, each order counted once, whether seen live on the "
    "`order` stream or recovered from order history after the exporter's stream was down.",
    at_zero=EACH_CATEGORY,
)
TRIGGERS = MetricSpec(
    "triggers",
    "bybit_dcp_triggers",
    COUNTER,
    BY_PRODUCT,
    "DCP trigger events (a burst of CancelByDCP cancels is one).",
    GROUP_TRIGGERS,
    "DCP trigger events: a burst of such cancels of one product is one trigger. A trigger while no orders "
    "were open cancels nothing and cannot be seen.",
    at_zero=EACH_PRODUCT,
)
IGNORED_CANCELS = MetricSpec(
    "ignored_cancels",
    "bybit_dcp_ignored_cancels",
    COUNTER,
    ACCOUNT,
    "CancelByDCP orders that could not be counted: no orderId, or a category Bybit does not document.",
    GROUP_TRIGGERS,
    "`CancelByDCP` orders that could not be counted: no `orderId`, a category Bybit does not document, or an "
    "`orderStatus` that is not a terminal cancel. Should stay 0; a rise means Bybit changed its order shape.",
    at_zero=PER_ACCOUNT,
)
LAST_TRIGGER = MetricSpec(
    "last_trigger",
    "bybit_dcp_last_trigger_timestamp_seconds",
    GAUGE,
    BY_PRODUCT,
    "Unix time of the last DCP trigger.",
    GROUP_TRIGGERS,
    "Unix time (Bybit's `updatedTime`) of the last trigger's first cancel.",
)
TRIGGER_INFO = MetricSpec(
    "trigger_info",
    "bybit_dcp_trigger_info",
    GAUGE,
    ("account", "product", "trigger"),
    "1 for each of the last few DCP triggers of a product; trigger is its first cancel's updatedTime in ms, "
    "so every trigger is an alert of its own.",
    GROUP_TRIGGERS,
    "1 for each of the product's last 10 triggers; `trigger` is the first cancel's `updatedTime` in ms. A new "
    "series is a new trigger: `BybitDcpTriggered` fires once per trigger, so a second trigger while the "
    "first still alerts pages again.",
)

# ---------------------------------------------------------------- re-assertion

REASSERT_ATTEMPTS = MetricSpec(
    "reassert_attempts",
    "bybit_dcp_reassert_attempts",
    COUNTER,
    BY_PRODUCT,
    "DCP window re-assertions sent.",
    GROUP_REASSERT,
    "Window re-assertions sent (`enforce` policy only). Only for the products with a desired window.",
    at_zero=DESIRED_PRODUCTS,
)
REASSERT_FAILURES = MetricSpec(
    "reassert_failures",
    "bybit_dcp_reassert_failures",
    COUNTER,
    BY_PRODUCT,
    "DCP window re-assertions that failed.",
    GROUP_REASSERT,
    "Re-assertions that failed (the set was refused, or the check after the settle time did not show the "
    "window). Only for the products with a desired window.",
    at_zero=DESIRED_PRODUCTS,
)
REASSERT_LAST_SUCCESS = MetricSpec(
    "reassert_last_success",
    "bybit_dcp_reassert_last_success_timestamp_seconds",
    GAUGE,
    BY_PRODUCT,
    "Unix time of the last verified re-assertion.",
    GROUP_REASSERT,
)
REASSERT_BLOCKED = MetricSpec(
    "reassert_blocked",
    "bybit_dcp_reassert_blocked",
    GAUGE,
    ("account", "product", "reason"),
    "1 while re-assertion is stopped for the product: reason=credentials (a key, permission or IP error; "
    "until config changes and a restart) or reason=contended (another writer undoes the sets; until the "
    "window stays unchanged for 15 minutes, or a restart).",
    GROUP_REASSERT,
    "1 while re-assertion is stopped for the product. `reason=credentials`: after a key, signature, "
    "permission, authentication, ban, region, IP or route error (10003/10004/10005/10007/10008/10009/10010/"
    "10017), until the configuration changes and the exporter restarts. `reason=contended`: another writer "
    "keeps undoing the verified sets, until Bybit has reported one unchanged setting for 15 minutes, or a "
    "restart ([reassert.md](reassert.md)).",
    at_zero=AtZero(each="product", only="desired", and_each=REASSERT_BLOCK_REASONS),
)

# ---------------------------------------------------------------- guardian liveness

GUARDIAN_ARMED = MetricSpec(
    "guardian_armed",
    "bybit_dcp_guardian_armed",
    GAUGE,
    BY_PRODUCT,
    "1 while the guardian holds the product's dcp.* switch for a live bot (its guarded connection is up).",
    GROUP_GUARDIAN,
    "1 while the guardian holds the product's `dcp.*` switch for a live bot (guarded connection up).",
    at_zero=AtZero(by=GUARDIAN, each="product", only="guarded"),
)
GUARDIAN_TRANSITIONS = MetricSpec(
    "guardian_transitions",
    "bybit_dcp_guardian_transitions",
    COUNTER,
    ("account", "to"),
    "Guardian switch changes: to=armed (the bot showed life), to=released (it stopped: DCP may fire).",
    GROUP_GUARDIAN,
    "Switch changes: `armed` (the bot showed life), `released` (it went silent: DCP may fire).",
    at_zero=AtZero(by=GUARDIAN, each="to"),
)
GUARDIAN_LIVENESS_REJECTED = MetricSpec(
    "guardian_liveness_rejected",
    "bybit_dcp_guardian_liveness_rejected",
    COUNTER,
    ACCOUNT,
    "Liveness calls refused for a missing or wrong bearer token (HTTP 401); they never arm the guardian.",
    GROUP_GUARDIAN,
    "Liveness calls refused with 401 (missing or wrong bearer token); they never arm the guardian.",
    at_zero=AtZero(by=GUARDIAN),
)
GUARDIAN_LIVENESS_ERRORS = MetricSpec(
    "guardian_liveness_errors",
    "bybit_dcp_guardian_liveness_errors",
    COUNTER,
    ("account", "reason"),
    "Liveness answers that told nothing (they never arm), and signs dated in the future (reason=future_time, "
    "counted as now), by reason.",
    GROUP_GUARDIAN,
    "Liveness answers that told nothing, by `reason`: `http_status`, `not_json`, `query_failed`, `bad_body`, "
    "`not_vector`, `bad_value`, `network`, `timeout`, `unreadable`, `exception` (they never arm), and `future_time` (a "
    "sign dated in the future, counted as now). Every reason at 0 from the guardian's start. See "
    "[guardian.md](guardian.md).",
    at_zero=AtZero(by=GUARDIAN, each="reason"),
)
GUARDIAN_LIVENESS_AGE = MetricSpec(
    "guardian_liveness_age",
    "bybit_dcp_guardian_liveness_age_seconds",
    GAUGE,
    ACCOUNT,
    "Seconds since the bot's last sign of life, computed at scrape time.",
    GROUP_GUARDIAN,
    "Seconds since the bot's last sign of life, at scrape time.",
    at_zero=AtZero(by=GUARDIAN),
    source=AT_SCRAPE,
)

# ---------------------------------------------------------------- drills

DRILL_LAST_SUCCESS = MetricSpec(
    "drill_last_success",
    "bybit_dcp_drill_last_success",
    GAUGE,
    BY_PRODUCT,
    "1 if the last drill saw DCP cancel the canary within window + tolerance and nothing else; else 0.",
    GROUP_GUARDIAN,
    "1 if the last scheduled drill passed (DCP cancelled the canary within window + tolerance, and nothing "
    "else), else 0.",
)
DRILL_LAST_RUN = MetricSpec(
    "drill_last_run",
    "bybit_dcp_drill_last_run_timestamp_seconds",
    GAUGE,
    BY_PRODUCT,
    "Unix time the last drill ended.",
    GROUP_GUARDIAN,
)
DRILL_TRIGGER_DELAY = MetricSpec(
    "drill_trigger_delay",
    "bybit_dcp_drill_trigger_delay_seconds",
    GAUGE,
    BY_PRODUCT,
    "Seconds from cutting the armed connection to the canary's CancelByDCP, in the last drill that saw it.",
    GROUP_GUARDIAN,
    "Seconds from the cut to the canary's `CancelByDCP` in the last drill that saw it.",
)

# ---------------------------------------------------------------- the exporter itself, identity

EVENT_LOOP_LAG = MetricSpec(
    "event_loop_lag",
    "bybit_dcp_exporter_event_loop_lag_seconds",
    HISTOGRAM,
    (),
    "How late the event loop wakes a task that sleeps 0.25 s, sampled 4 times a second: the time a pong "
    "or a REST answer can wait before the exporter reads it.",
    GROUP_IDENTITY,
    "How much later than asked the event loop woke a task that sleeps 0.25 s (4 samples a second). Every "
    "pong and REST answer waits this long before it is read, so when it is high the RTT and REST figures "
    "include the exporter's own stall, not only Bybit's.",
    buckets=LOOP_LAG_BUCKETS,
    at_zero=AtZero(by=START),
)
ACCOUNT_INFO = MetricSpec(
    "account_info",
    "bybit_dcp_account_info",
    GAUGE,
    ("account", "environment", "mode"),
    "Always 1; the account's environment and mode.",
    GROUP_IDENTITY,
    "Always 1. `environment` is `mainnet`, `testnet`, `demo`, `custom` (own URLs) or `simulator` (`--demo`); "
    "`mode` is `observer` or `guardian`.",
    at_zero=AtZero(value=1),  # environment and mode: add_account's arguments of those names
)
BUILD_INFO = MetricSpec(
    "build_info",
    "bybit_dcp_exporter_build_info",
    GAUGE,
    ("version",),
    "Always 1; the exporter's version.",
    GROUP_IDENTITY,
    at_zero=AtZero(by=START, value=1),
)
SHARD_INFO = MetricSpec(
    "shard_info",
    "bybit_dcp_exporter_shard_info",
    GAUGE,
    ("shard_index", "shard_count"),
    "Always 1; this replica's shard index and the number of shards.",
    GROUP_IDENTITY,
    "Always 1; this replica's shard (`--shard.index`) and the number of shards (`--shard.count`).",
)
SHARD_ACCOUNTS = MetricSpec(
    "shard_accounts",
    "bybit_dcp_exporter_shard_accounts",
    GAUGE,
    (),
    "Accounts this replica watches (its shard).",
    GROUP_IDENTITY,
    "Accounts this replica watches: those of its shard (all of them with one shard).",
    at_zero=AtZero(by=START),
)

EXPORTER_TASKS = MetricSpec(
    "exporter_tasks",
    "bybit_dcp_exporter_tasks",
    GAUGE,
    (),
    "asyncio tasks alive in the exporter's event loop, counted at scrape time (a steady rise is a leak).",
    GROUP_IDENTITY,
    "The asyncio tasks alive in the exporter's event loop, counted when Prometheus scrapes. A task that "
    "is never awaited or cancelled (a reconnect that leaks its reader, a set that never ends) grows it one "
    "by one; nothing else shows it until memory does. No sample outside an event loop.",
    source=TASKS,
)

# ---------------------------------------------------------------- the process (prometheus_client's)


def _process(name: str, kind: str, doc: str) -> MetricSpec:
    return MetricSpec("", name, kind, (), "", GROUP_PROCESS, doc, at_zero=AtZero(by=START), source=PROCESS)


PROCESS_SPECS = (
    _process("process_cpu_seconds", COUNTER, "CPU time used (user + system)."),
    _process("process_resident_memory_bytes", GAUGE, "Resident memory."),
    _process("process_virtual_memory_bytes", GAUGE, "Virtual memory."),
    _process("process_start_time_seconds", GAUGE, "Unix time the process started."),
    _process("process_open_fds", GAUGE, "Open file descriptors (sockets included)."),
    _process("process_max_fds", GAUGE, "The file-descriptor limit."),
)

# The registry's order, which is the exposition's: keep it, or the bytes of /metrics change.
SPECS: tuple[MetricSpec, ...] = (
    UP,
    ENABLED,
    WINDOW,
    DESIRED_WINDOW,
    DRIFT,
    LAST_POLL_SUCCESS,
    POLL_INTERVAL,
    LAST_POLL_ERROR,
    UNIFIED_MARGIN_STATUS,
    UNPROTECTED_CATEGORY,
    API_REQUESTS,
    API_ERRORS,
    API_FAILURES,
    API_DURATION,
    API_CONNECTION_WAIT,
    API_CONNECTIONS_OPENED,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT,
    CLOCK_SKEW,
    CLOCK_SKEW_REFUSED,
    INVALID_VALUES,
    BACKFILL_FAILURES,
    WS_CONNECTED,
    WS_RECONNECTS,
    WS_RTT,
    WS_LAST_PONG,
    WS_HEARTBEAT_GAP,
    WS_PONG_TIMEOUTS,
    WS_DCP_SUBSCRIBED,
    WS_INVALID_MESSAGES,
    WS_PING_INTERVAL,
    WS_PONG_TIMEOUT,
    PING_GAP,
    CANCELLED_ORDERS,
    TRIGGERS,
    IGNORED_CANCELS,
    LAST_TRIGGER,
    TRIGGER_INFO,
    REASSERT_ATTEMPTS,
    REASSERT_FAILURES,
    REASSERT_LAST_SUCCESS,
    REASSERT_BLOCKED,
    GUARDIAN_ARMED,
    GUARDIAN_TRANSITIONS,
    GUARDIAN_LIVENESS_REJECTED,
    GUARDIAN_LIVENESS_ERRORS,
    GUARDIAN_LIVENESS_AGE,
    DRILL_LAST_SUCCESS,
    DRILL_LAST_RUN,
    DRILL_TRIGGER_DELAY,
    EVENT_LOOP_LAG,
    ACCOUNT_INFO,
    BUILD_INFO,
    SHARD_INFO,
    SHARD_ACCOUNTS,
    EXPORTER_TASKS,
    *PROCESS_SPECS,
)
