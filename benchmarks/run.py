"""Run every benchmark and print its figures: python benchmarks/run.py"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS = (
    "validate_cold.py",
    "daemon_cli.py",
    "throughput.py",
    "engine.py",
    "replay_check.py",
    "dispatch.py",
    "deploy.py",
    "gateway_load.py",
    "daemon_scale.py",
)
for script in SCRIPTS:
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
