"""Outages of a venue, said once when they start and once when they end (SPEC §8: a gateway that
is down gives a visible error on the session, which keeps running and recovers)."""

from __future__ import annotations

from typing import Any

from qkt.engine.events import VenueNotice


class Outage:
    """One thing read from a venue again and again (its positions, a symbol's quotes)."""

    def __init__(self, bus: Any, clock: Any, broker: str, what: str) -> None:
        self.bus = bus
        self.clock = clock
        self.broker = broker
        self.what = what
        self.down = False

    def failed(self, reason: str) -> None:
        if not self.down:
            self.down = True
            message = f"{self.what} cannot be read: {reason}"
            self.bus.publish(VenueNotice(self.broker, "warning", message, self.clock.now()))

    def answered(self) -> None:
        if self.down:
            self.down = False
            message = f"{self.what} can be read again"
            self.bus.publish(VenueNotice(self.broker, "info", message, self.clock.now()))
