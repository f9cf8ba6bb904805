"""Regenerate docs/qkt.config.schema.json from the config models.

python scripts/gen_config_schema.py           # write the file
python scripts/gen_config_schema.py --check   # exit 1 if the file is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qkt.config import config_json_schema  # noqa: E402

OUT = ROOT / "docs" / "qkt.config.schema.json"


def render() -> str:
    """The file's exact text (what ``qkt config schema`` prints, too)."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(
                f"{OUT.relative_to(ROOT)} is out of date: run python scripts/gen_config_schema.py"
            )
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
