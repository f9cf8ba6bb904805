"""The exception family: everything qkt raises on purpose derives from :class:`QktError`."""

from __future__ import annotations

from collections.abc import Iterable

from qkt.diagnostics import Diagnostic


class QktError(Exception):
    """A user-facing failure carrying one or more diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]) -> None:
        diags = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        self.diagnostics: list[Diagnostic] = diags
        super().__init__("\n".join(d.format() for d in diags))


class ConfigError(QktError):
    """The configuration (qkt.config.yaml, environment) is wrong."""


class StrategyError(QktError):
    """A strategy file does not parse or check."""


class PortfolioError(QktError):
    """A portfolio file is wrong."""


class RoutingError(QktError):
    """Routes could not be planned (strict mode refusals, unknown profiles)."""
