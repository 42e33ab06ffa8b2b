"""A faithful fake Bybit V5 (REST + private websocket + DCP engine) for tests, demos and drills.

Loopback only. See docs/simulator.md.
"""

from .accounts import SimAccount
from .server import Simulator

__all__ = ["SimAccount", "Simulator"]
