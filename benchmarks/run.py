"""Run every benchmark and print its figures: python benchmarks/run.py"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("validate_cold.py", "throughput.py", "engine.py", "replay_check.py", "dispatch.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
