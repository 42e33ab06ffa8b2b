"""The guardian's dead man's switch as a pure state machine: signs of life in, arm or let go out.

Sans-I/O: the caller passes every time in (``now``, the time of a sign), and acts on what
:meth:`Switch.decide` returns: open the guarded ``dcp.*`` connection on ``armed``, close it
on ``released``. The switch starts released, so a guardian whose bot never showed life never
holds DCP off; it arms on the first sign and lets go ``timeout`` seconds after the last one.
"""

from __future__ import annotations

from typing import Literal

Transition = Literal["armed", "released"]
TRANSITIONS: tuple[Transition, ...] = ("armed", "released")


class Switch:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.armed = False
        self.last_sign: float | None = None

    def sign_of_life(self, at: float) -> None:
        """A sign seen at ``at`` (unix seconds); an older sign than one already seen changes nothing."""
        if self.last_sign is None or at > self.last_sign:
            self.last_sign = at

    def alive(self, now: float) -> bool:
        return self.last_sign is not None and now - self.last_sign < self.timeout

    def decide(self, now: float) -> Transition | None:
        """Arm when the bot is alive and the switch is not; let go when it is armed and the bot is not."""
        alive = self.alive(now)
        if alive and not self.armed:
            self.armed = True
            return "armed"
        if not alive and self.armed:
            self.armed = False
            return "released"
        return None

    def next_decision(self) -> float | None:
        """When the switch lets go unless a sign comes first (None: it holds nothing to let go)."""
        return None if self.last_sign is None or not self.armed else self.last_sign + self.timeout
