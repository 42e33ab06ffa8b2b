"""Prometheus exporter for Bybit Disconnection Protect (DCP)."""

__version__ = "0.1.0"
