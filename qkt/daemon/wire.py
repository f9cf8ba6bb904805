"""A profile's resolved fields as a deploy carries them from the client to the daemon, which
compares them with its own (SPEC §5.4): JSON values, a secret as ``***`` when it is set (None when
not) — never a secret's value. Cheap to import: the CLI builds them before its request."""

from __future__ import annotations

import json
from typing import Any

from qkt.config.resolved import public


def profile_fields(profile: Any) -> dict[str, Any]:
    return {str(k): jsonable(public(v)) for k, v in profile.values.items()}


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (so both sides compare the same thing)."""
    return json.loads(json.dumps(value, default=str))
