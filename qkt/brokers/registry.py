"""The broker registry: lowercased label -> (resolved profile, broker factory).

A label resolves to the profile whose name is the lowercased label (SPEC §1). Building the registry
is cheap and imports no adapter: each factory imports its adapter only when a session calls it, so
``qkt validate`` stays free of network libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qkt.brokers.base import Broker, BrokerFactory, Clock, EventBus, MarketPriceTracker
from qkt.diagnostics import error
from qkt.errors import NotImplementedBrokerError

if TYPE_CHECKING:
    from qkt.config import ResolvedConfig, ResolvedProfile

PAPER_LABELS = frozenset({"backtest", "paper"})
"""Labels that route to the paper broker explicitly: never a fallback."""


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    profile: ResolvedProfile
    factory: BrokerFactory


FactoryBuilder = Callable[["ResolvedProfile"], BrokerFactory]


def _not_yet(profile: ResolvedProfile) -> BrokerFactory:
    def factory(bus: EventBus, clock: Clock, prices: MarketPriceTracker) -> Broker:
        raise NotImplementedBrokerError(
            error(
                "broker-not-implemented",
                f"profile `{profile.name}`: the {profile.type} broker cannot trade yet in this version",
            )
        )

    return factory


_BUILDERS: dict[str, FactoryBuilder] = {}


def register_builder(profile_type: str, builder: FactoryBuilder) -> None:
    """Install the factory builder for a profile type (adapters call this when they land)."""
    _BUILDERS[profile_type] = builder


def _paper(profile: ResolvedProfile) -> BrokerFactory:
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


def _mt5(profile: ResolvedProfile) -> BrokerFactory:
    def factory(bus: EventBus, clock: Clock, prices: MarketPriceTracker) -> Broker:
        from qkt.brokers.mt5.broker import MT5Broker

        return MT5Broker(profile, bus, clock, prices)  # no I/O: the session starts it on its loop

    return factory


def factory_for(profile: ResolvedProfile) -> BrokerFactory:
    defaults = {"paper": _paper, "mt5": _mt5}
    default = defaults.get(profile.type, _not_yet)
    return _BUILDERS.get(profile.type, default)(profile)


class BrokerRegistry(Mapping[str, RegistryEntry]):
    """Read-only mapping of lowercased label to its registry entry."""

    def __init__(self, entries: Mapping[str, RegistryEntry] | None = None) -> None:
        self._entries = {k.lower(): v for k, v in sorted((entries or {}).items())}

    @classmethod
    def from_config(cls, config: ResolvedConfig) -> BrokerRegistry:
        return cls({name: RegistryEntry(p, factory_for(p)) for name, p in config.profiles.items()})

    def resolve(self, label: str) -> RegistryEntry | None:
        return self._entries.get(label.lower())

    def __getitem__(self, label: str) -> RegistryEntry:
        return self._entries[label.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, str) and label.lower() in self._entries
