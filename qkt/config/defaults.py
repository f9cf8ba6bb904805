"""The configuration when there is nothing to read: built-in profiles only, without pydantic.

Built-ins are trusted data, so resolving them needs no validation; a test checks that this gives
exactly what the validating path gives for an empty config file.
"""

from __future__ import annotations

from qkt.config.builtins import BUILTIN_PROFILES, DEFAULT_STARTING_BALANCE, builtin_values
from qkt.config.resolved import ResolvedConfig, ResolvedProfile


def builtin_config() -> ResolvedConfig:
    profiles: dict[str, ResolvedProfile] = {}
    for name, given in BUILTIN_PROFILES.items():
        values = builtin_values(name)
        sources = {key: "builtin" if key in given else "default" for key in values}
        profiles[name] = ResolvedProfile(name, given["type"], values, sources, "builtin")
    return ResolvedConfig(
        path=None,
        display=None,
        strict_brokers=False,
        strict_brokers_source="default",
        state_dir=None,
        profiles=profiles,
        market_data_values={"source": "venue", "replay": None},
        paper_values={"starting_balance": DEFAULT_STARTING_BALANCE},
    )
