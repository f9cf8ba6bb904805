"""Server time zones of MT5 profiles: an IANA id, ``UTC``, or ``ny-close``.

Most MT5 brokers run their servers on "New York close" time: New York time + 7 hours, so that the
daily candle closes at 17:00 New York (UTC+2 in winter, UTC+3 in summer). No IANA zone matches it
exactly: Europe/Athens (EET) has the same offsets but changes on the EU dates, which differ from the
US ones for about three weeks a year (second Sunday of March to last Sunday of March, last Sunday of
October to first Sunday of November). Server timestamps off by an hour for three weeks would shift
daily bars and session filters, so qkt names the rule itself: ``ny-close``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from typing import Final

NY_CLOSE: Final = "ny-close"
_SHIFT: Final = timedelta(hours=7)


@cache
def _new_york() -> tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/New_York")


class NewYorkClose(tzinfo):
    """New York time + 7 hours: UTC+2 while New York is on EST, UTC+3 while it is on EDT."""

    def _ny(self, dt: datetime) -> datetime:
        return (dt.replace(tzinfo=None) - _SHIFT).replace(tzinfo=_new_york(), fold=dt.fold)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(hours=2)
        offset = self._ny(dt).utcoffset()
        assert offset is not None
        return offset + _SHIFT

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(0)
        return self._ny(dt).dst() or timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        hours = int(self.utcoffset(dt).total_seconds() // 3600)
        return f"UTC+{hours:02d}:00"

    def fromutc(self, dt: datetime) -> datetime:
        ny = dt.replace(tzinfo=UTC).astimezone(_new_york())
        return (ny.replace(tzinfo=None) + _SHIFT).replace(tzinfo=self, fold=ny.fold)

    def __repr__(self) -> str:
        return "NewYorkClose()"


def server_zone(name: str) -> tzinfo:
    """The ``tzinfo`` of a ``server_time_zone`` value; raises ValueError for an unknown zone."""
    if name == "UTC":
        return UTC
    if name == NY_CLOSE:
        return NewYorkClose()
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"must be an IANA time zone (e.g. Europe/London), UTC or {NY_CLOSE}"
        ) from exc
