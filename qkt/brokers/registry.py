"""The broker registry: lowercased label -> (resolved profile, broker factory).

A label resolves to the profile whose name is the lowercased label (SPEC §1). Building the registry
is cheap and imports no adapter: each factory imports its adapter only when a session calls it, so
``qkt validate`` stays free of network libraries.

A registry holds one venue connection per profile (:class:`Connections`): every session built
from it — a daemon's deployments, ``qkt run``'s one session — gets a broker of its own over the
profile's one connection (SPEC §6.1), made when the first session asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qkt.brokers.base import Broker, BrokerFactory, Clock, EventBus, MarketPriceTracker

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig, ResolvedProfile

PAPER_LABELS = frozenset({"backtest", "paper"})
"""Labels that route to the paper broker explicitly: never a fallback."""


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    profile: ResolvedProfile
    factory: BrokerFactory


class Connections:
    """The venue connections of a registry, one per profile, made on first use."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}

    def get(self, profile: str, make: Callable[[], Any]) -> Any:
        venue = self._made.get(profile)
        if venue is None:
            venue = self._made[profile] = make()
        return venue

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._made.values()))


FactoryBuilder = Callable[["ResolvedProfile", Connections], BrokerFactory]


_BUILDERS: dict[str, FactoryBuilder] = {}


def register_builder(profile_type: str, builder: FactoryBuilder) -> None:
    """Install the factory builder for a profile type (adapters call this when they land)."""
    _BUILDERS[profile_type] = builder


def _paper(profile: ResolvedProfile, connections: Connections) -> BrokerFactory:
    def factory(bus: EventBus, clock: Clock, prices: MarketPriceTracker) -> Broker:
        from decimal import Decimal

        from qkt.brokers.paper import PaperBroker

        values = profile.values
        return PaperBroker(
            profile.name,
            bus,
            clock,
            prices,  # type: ignore[arg-type]
            slippage_bps=Decimal(values.get("slippage_bps") or 0),
            commission_bps=Decimal(values.get("commission_bps") or 0),
            starting_balance=Decimal(values.get("starting_balance") or 10000),
            contract_sizes={
                symbol: Decimal(size)
                for symbol, size in (values.get("contract_sizes") or {}).items()
            },
        )

    return factory


def _mt5_venue(profile: ResolvedProfile) -> Any:
    from qkt.brokers.mt5.venue import MT5Venue

    return MT5Venue(profile)


def _bybit_venue(profile: ResolvedProfile) -> Any:
    from qkt.brokers.bybit.venue import BybitVenue

    return BybitVenue(profile)


_VENUES: dict[str, Callable[[ResolvedProfile], Any]] = {"mt5": _mt5_venue, "bybit": _bybit_venue}


def register_venue(profile_type: str, make: Callable[[ResolvedProfile], Any]) -> None:
    """Install how a profile type's shared venue connection is made."""
    _VENUES[profile_type] = make


def venue_for(profile: ResolvedProfile, connections: Connections) -> Any:
    """The profile's one venue connection (made on first use), or None for paper."""
    make = _VENUES.get(profile.type)
    return None if make is None else connections.get(profile.name, lambda: make(profile))


def _mt5(profile: ResolvedProfile, connections: Connections) -> BrokerFactory:
    def factory(bus: EventBus, clock: Clock, prices: MarketPriceTracker) -> Broker:
        from qkt.brokers.mt5.broker import MT5Broker

        # No I/O: the session starts it on its loop, joining the profile's one connection.
        return MT5Broker(profile, bus, clock, prices, venue=venue_for(profile, connections))

    return factory


def _bybit(profile: ResolvedProfile, connections: Connections) -> BrokerFactory:
    def factory(bus: EventBus, clock: Clock, prices: MarketPriceTracker) -> Broker:
        from qkt.brokers.bybit.broker import BybitBroker

        return BybitBroker(profile, bus, clock, prices, venue=venue_for(profile, connections))

    return factory


def factory_for(profile: ResolvedProfile, connections: Connections | None = None) -> BrokerFactory:
    defaults = {"paper": _paper, "mt5": _mt5, "bybit": _bybit}
    builder = _BUILDERS.get(profile.type) or defaults[profile.type]
    return builder(profile, connections or Connections())


class BrokerRegistry(Mapping[str, RegistryEntry]):
    """Read-only mapping of lowercased label to its registry entry."""

    def __init__(
        self,
        entries: Mapping[str, RegistryEntry] | None = None,
        connections: Connections | None = None,
    ) -> None:
        self._entries = {k.lower(): v for k, v in sorted((entries or {}).items())}
        self.connections = connections or Connections()

    @classmethod
    def from_config(cls, config: ResolvedConfig) -> BrokerRegistry:
        shared = Connections()
        entries = {
            name: RegistryEntry(p, factory_for(p, shared)) for name, p in config.profiles.items()
        }
        return cls(entries, shared)

    def resolve(self, label: str) -> RegistryEntry | None:
        return self._entries.get(label.lower())

    def venue(self, name: str) -> Any:
        """The shared venue connection of profile ``name`` (its quotes serve a paper profile's
        ``quotes_from``), or None when there is no such venue profile."""
        entry = self.resolve(name)
        return None if entry is None else venue_for(entry.profile, self.connections)

    def __getitem__(self, label: str) -> RegistryEntry:
        return self._entries[label.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and label.lower() in self._entries
