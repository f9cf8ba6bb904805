"""The broker server's wall clock, as MT5 gateways write it (reference/mt5-gateway.md, "Times").

Positions, deals and ticks carry ``time`` / ``time_msc`` as epochs of the server's *wall clock*: the
number you get by reading the server's local time as if it were UTC. A New York close server at
14:00 UTC (16:00 on its clock in winter) answers ``time`` = the epoch of 16:00 UTC. Date-range
parameters (``from_date``/``to_date`` of ``/history_deals_get``) are written on that clock too.
Only the bar endpoints answer in UTC. These functions convert both ways; ``zone`` is the
profile's ``server_time_zone`` (:func:`qkt.config.timezones.server_zone`), None meaning UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

DEAL_DATE = "%Y-%m-%dT%H:%M:%SZ"  # the digits are the broker's clock; gateways expect the Z


def to_utc(epoch_ms: int, zone: tzinfo | None) -> datetime:
    """The UTC moment of a broker wall-clock epoch in milliseconds."""
    wall = datetime.fromtimestamp(epoch_ms / 1000, UTC).replace(tzinfo=None)
    if zone is None or zone is UTC:
        return wall.replace(tzinfo=UTC)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def to_wall_ms(moment: datetime, zone: tzinfo | None) -> int:
    """The broker wall-clock epoch (milliseconds) of an aware moment: what a server in ``zone``
    writes as ``time_msc``."""
    local = moment.astimezone(zone or UTC).replace(tzinfo=UTC)
    return int(local.timestamp() * 1000)


def wall_date(moment: datetime, zone: tzinfo | None) -> str:
    """``moment`` written as a ``from_date``/``to_date`` of the broker's clock (ISO, no zone)."""
    return moment.astimezone(zone or UTC).strftime(DEAL_DATE)


def parse_wall_date(text: str, zone: tzinfo | None) -> datetime:
    """The UTC moment of a broker wall-clock ISO date (a trailing ``Z`` or offset is ignored: the
    gateway reads the digits as the server's clock)."""
    digits = text.strip().removesuffix("Z")
    naive = datetime.fromisoformat(digits).replace(tzinfo=None)
    return naive.replace(tzinfo=zone or UTC).astimezone(UTC)
