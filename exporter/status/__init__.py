"""The status board: what `/` and `/api/v1/status` show, read from the metrics Prometheus scrapes.

``snapshot`` reads the registry into one :class:`~.snapshot.Snapshot` per account; ``sampler``
keeps a small history per account and turns changes between samples into events; ``model``
decides each account's state; ``render`` and ``api`` write it as HTML and JSON; ``service``
is the thin shell that samples on the injected clock. Reading only the metrics keeps the page
from ever disagreeing with `/metrics`, and keeps this package free of the bybit and monitor layers.
"""
