"""Shared fixtures. Tests run against the simulator over loopback; nothing reaches Bybit."""
