"""Whether a quantity is a volume a venue takes: its minimum, maximum and step.

Shared by ``qkt validate`` (against a profile's ``instrument_overrides`` and, with ``--probe``,
the venue's live limits) and by the brokers (against the venue's limits right before sending).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

VolumeProblem = Literal["below-min", "above-max", "off-step"]


def volume_problems(
    qty: Decimal,
    min_volume: Decimal | None,
    volume_step: Decimal | None,
    max_volume: Decimal | None,
) -> list[tuple[VolumeProblem, Decimal]]:
    """What keeps ``qty`` from being a volume the venue takes, each with the limit it breaks."""
    found: list[tuple[VolumeProblem, Decimal]] = []
    if min_volume is not None and qty < min_volume:
        found.append(("below-min", min_volume))
    elif max_volume is not None and qty > max_volume:
        found.append(("above-max", max_volume))
    if volume_step is not None and volume_step > 0 and qty % volume_step != 0:
        found.append(("off-step", volume_step))
    return found


_LIMIT_TEXT: dict[VolumeProblem, str] = {
    "below-min": "is below the minimum volume",
    "above-max": "is above the maximum volume",
    "off-step": "is not a multiple of the volume step",
}


def volume_text(problem: VolumeProblem, limit: Decimal) -> str:
    """``is below the minimum volume 0.01``: the end of a message about one order size."""
    return f"{_LIMIT_TEXT[problem]} {limit}"
