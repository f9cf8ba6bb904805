"""The resolved configuration: typed, immutable values every other part of qkt reads.

Importing this module does not import pydantic: ``qkt validate`` reads resolved profiles through
the plain accessors below, and only code that needs a full model (a broker adapter, the daemon)
asks for :attr:`ResolvedProfile.settings` or :attr:`ResolvedConfig.market_data`, built on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qkt.config.builtins import BYBIT_MAINNET, BYBIT_TESTNET
from qkt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from qkt.config.models import MarketData, PaperDefaults, ProfileModel

ProfileType = Literal["mt5", "bybit", "paper"]


class Secret:
    """A secret value: prints as ``***`` everywhere; :meth:`reveal` is the only way to read it.

    ``ref`` names the environment variable the value came from, when it is exactly that
    variable's value; the config cache stores that name, never the value.
    """

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: str | None = None) -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("secrets are never serialised")


@dataclass(frozen=True, slots=True)
class ResolvedProfile:
    """One broker profile after every layer: its values and where each came from."""

    name: str
    type: ProfileType
    values: Mapping[str, Any]
    """Every field of the profile's model (secrets as :class:`Secret`, Decimals as Decimal)."""
    sources: Mapping[str, str]
    """Field → ``builtin``, ``config:<file>:<line>``, ``extends:<profile>``, ``env:<VAR>``,
    ``flag`` or ``default``."""
    origin: str
    """Where the profile itself is defined: ``builtin``, ``config:<file>:<line>``, ``env:<VAR>``."""
    _model: list[Any] = field(default_factory=list, compare=False, repr=False)

    @property
    def target(self) -> str:
        """Where orders go: the gateway URL, the Bybit base URL, or ``paper``."""
        if self.type == "mt5":
            return str(self.values["gateway_url"])
        if self.type == "bybit":
            base = self.values.get("base_url")
            if base:
                return str(base)
            return BYBIT_TESTNET if self.values.get("testnet", True) else BYBIT_MAINNET
        return "paper"

    @property
    def magic(self) -> int | None:
        value = self.values.get("magic")
        return int(value) if value is not None else None

    @property
    def symbol_suffix(self) -> str:
        return str(self.values.get("symbol_suffix") or "")

    @property
    def aliases(self) -> Mapping[str, str]:
        aliases: Mapping[str, str] = self.values.get("aliases") or {}
        return aliases

    def instrument(self, *symbols: str) -> Mapping[str, Decimal | int | None] | None:
        """The instrument override of the first of ``symbols`` that has one."""
        overrides: Mapping[str, Mapping[str, Any]] = self.values.get("instrument_overrides") or {}
        for symbol in symbols:
            if symbol in overrides:
                return overrides[symbol]
        return None

    def time_zone(self) -> tzinfo | None:
        """The server clock of an MT5 profile (``ny-close`` is New York time + 7 h)."""
        from qkt.config.timezones import server_zone

        zone = self.values.get("server_time_zone")
        return server_zone(str(zone)) if zone else None

    def secret(self, name: str) -> str | None:
        """The plain value of secret field ``name`` (``api_key``, ``api_secret``), or None."""
        value = self.values.get(name)
        return value.reveal() if isinstance(value, Secret) else None

    @property
    def settings(self) -> ProfileModel:
        """The validated pydantic model of this profile (built on first use)."""
        if not self._model:
            from qkt.config.models import PROFILE_MODELS

            data = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in self.values.items()}
            self._model.append(PROFILE_MODELS[self.type].model_validate(data))
        model: ProfileModel = self._model[0]
        return model

    def public_fields(self) -> dict[str, dict[str, Any]]:
        """Every field but ``type`` with its JSON-ready value (secrets as ``***``) and source."""
        return {
            key: {"value": public(value), "source": self.sources.get(key, "default")}
            for key, value in self.values.items()
            if key != "type"
        }


def public(value: Any) -> Any:
    """A value as JSON shows it: secrets as ``***``, Decimals as strings."""
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The whole configuration after discovery, expansion and resolution."""

    path: Path | None
    display: str | None
    """The file as diagnostics and provenance name it (relative to the working directory)."""
    strict_brokers: bool
    strict_brokers_source: str
    state_dir: Path | None
    """``state_dir`` of the file with ``~`` expanded (see :func:`qkt.config.resolve_state_dir`)."""
    profiles: Mapping[str, ResolvedProfile]
    diagnostics: tuple[Diagnostic, ...] = ()
    market_data_values: Mapping[str, Any] = field(default_factory=dict)
    paper_values: Mapping[str, Any] = field(default_factory=dict)
    _models: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def profile(self, name: str) -> ResolvedProfile | None:
        """The profile a label names (case-insensitive), or None."""
        return self.profiles.get(name.lower())

    @property
    def market_data(self) -> MarketData:
        """``market_data`` as its pydantic model (built on first use)."""
        if "market_data" not in self._models:
            from qkt.config.models import MarketData

            self._models["market_data"] = MarketData.model_validate(self.market_data_values)
        model: MarketData = self._models["market_data"]
        return model

    @property
    def paper(self) -> PaperDefaults:
        """``paper`` (the defaults of paper accounts) as its pydantic model."""
        if "paper" not in self._models:
            from qkt.config.models import PaperDefaults

            self._models["paper"] = PaperDefaults.model_validate(self.paper_values)
        model: PaperDefaults = self._models["paper"]
        return model
