"""Which broker profiles answer (SPEC §6.1): ``up``, or ``down since T: reason``, from what the
deployments' sessions say on their buses.

A venue broker says an outage once when it starts and once when it ends
(:class:`~qkt.engine.events.VenueNotice`, :mod:`qkt.brokers.notices`): ``<what> cannot be read:
<reason>`` then ``<what> can be read again`` — its positions, a symbol's quotes; a start that
waits for the gateway says ``waiting for gateway ...`` then ``gateway ... is ready``. A profile is
down while any of these is open for any deployment using it, since the earliest. Warm-up notices
(``warm-up of ...``) say nothing about connectivity: :func:`is_warmup` tells them apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from qkt.daemon.models import BrokerOut
from qkt.engine.events import VenueNotice

_DOWN = " cannot be read"
_UP = " can be read again"
_READINESS = "readiness"


def is_warmup(message: str) -> bool:
    return message.startswith("warm-up of") or "serves no bar history" in message


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Profile:
    type: str
    target: str
    users: set[str] = field(default_factory=set)
    down: dict[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)


class Connectivity:
    def __init__(self) -> None:
        self._profiles: dict[str, _Profile] = {}

    def use(self, user: str, profile: str, kind: str, target: str) -> None:
        """``user`` (a deployment's token) trades through ``profile`` (a venue profile)."""
        entry = self._profiles.setdefault(profile, _Profile(kind, target))
        entry.users.add(user)

    def release(self, user: str) -> None:
        """``user`` stopped: its notices no longer count, and a profile nobody uses is
        forgotten."""
        for name, entry in list(self._profiles.items()):
            entry.users.discard(user)
            entry.down = {k: v for k, v in entry.down.items() if k[0] != user}
            if not entry.users:
                del self._profiles[name]

    def notice(self, user: str, notice: VenueNotice) -> None:
        entry = self._profiles.get(notice.broker)
        if entry is None or is_warmup(notice.message):
            return
        message = notice.message
        if notice.level == "warning":
            if _DOWN in message:
                what = message.split(_DOWN, 1)[0]
            elif message.startswith("waiting for gateway"):
                what = _READINESS
            else:
                return  # a warning about something else (a symbol, a partial answer)
            entry.down.setdefault((user, what), (notice.time, message))
            return
        if message.endswith(_UP):
            entry.down.pop((user, message[: -len(_UP)]), None)
        elif message.startswith("gateway ") and message.endswith(" is ready"):
            entry.down.pop((user, _READINESS), None)

    def refused(self, user: str, profile: str, reason: str) -> None:
        """A start refused because the gateway does not answer (a restored deployment retries)."""
        entry = self._profiles.get(profile)
        if entry is not None:
            entry.down.setdefault((user, _READINESS), (datetime.now(UTC), reason))

    def answered(self, user: str, profile: str) -> None:
        entry = self._profiles.get(profile)
        if entry is not None:
            entry.down.pop((user, _READINESS), None)

    def broker(self, profile: str) -> BrokerOut | None:
        entry = self._profiles.get(profile)
        if entry is None:
            return None
        if not entry.down:
            return BrokerOut(profile=profile, type=entry.type, target=entry.target, state="up")
        since, reason = min(entry.down.values(), key=lambda item: item[0])
        return BrokerOut(
            profile=profile,
            type=entry.type,
            target=entry.target,
            state="down",
            since=when(since),
            reason=reason,
        )

    def brokers(self, profiles: Iterable[str] | None = None) -> list[BrokerOut]:
        names = sorted(self._profiles) if profiles is None else list(dict.fromkeys(profiles))
        found = (self.broker(name) for name in names)
        return [b for b in found if b is not None]
