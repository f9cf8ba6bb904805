"""Regenerate docs/qkt.config.schema.json from the config models: python scripts/gen_config_schema.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qkt.config import config_json_schema  # noqa: E402

OUT = ROOT / "docs" / "qkt.config.schema.json"


def render() -> str:
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
