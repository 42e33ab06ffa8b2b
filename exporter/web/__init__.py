"""The exporter's HTTP side: the app (``/metrics``, the status page, health), the web-config
file, the connection guard, and the guardian's liveness route."""
