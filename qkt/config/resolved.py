"""The resolved configuration: typed, immutable values every other part of qkt reads.

Importing this module does not import pydantic: ``qkt validate`` reads resolved profiles through
the accessors below, and only code that needs the full model (a broker adapter) asks for
:attr:`ResolvedProfile.settings`, which validates lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qkt.diagnostics import Diagnostic

if TYPE_CHECKING:
    from qkt.config.models import BybitProfile, Mt5Profile, PaperProfile

ProfileType = Literal["mt5", "bybit", "paper"]
BYBIT_TESTNET = "https://api-testnet.bybit.com"
BYBIT_MAINNET = "https://api.bybit.com"
SECRETS = frozenset({"api_key", "api_secret"})


class Secret:
    """A secret value: prints as ``***`` everywhere; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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
    sources: Mapping[str, str]
    origin: str
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

    def secret(self, name: str) -> str | None:
        value = self.values.get(name)
        return value.reveal() if isinstance(value, Secret) else None

    @property
    def settings(self) -> Mt5Profile | BybitProfile | PaperProfile:
        """The full pydantic model of this profile (validated on first use)."""
        if not self._model:
            from qkt.config.models import PROFILE_MODELS

            data = {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in self.values.items()}
            self._model.append(PROFILE_MODELS[self.type].model_validate(data))
        model: Mt5Profile | BybitProfile | PaperProfile = self._model[0]
        return model

    def public_fields(self) -> dict[str, dict[str, Any]]:
        """Every field with its value (JSON-ready, secrets as ``***``) and source."""
        out: dict[str, dict[str, Any]] = {}
        for key, value in self.values.items():
            if key == "type":
                continue
            out[key] = {"value": _public(value), "source": self.sources.get(key, "default")}
        return out


def _public(value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    path: Path | None
    display: str | None
    strict_brokers: bool
    strict_brokers_source: str
    state_dir: Path | None
    market_data: Mapping[str, Any]
    paper: Mapping[str, Any]
    profiles: Mapping[str, ResolvedProfile]
    diagnostics: tuple[Diagnostic, ...] = ()

    def profile(self, name: str) -> ResolvedProfile | None:
        return self.profiles.get(name.lower())
