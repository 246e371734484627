"""`make bench` (`python -m bench`) lists every benchmark with a command to run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def test_every_benchmark_is_listed_with_its_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench"],
        capture_output=True,
        text=True,
        cwd=BENCH_DIR.parent,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    modules = [p.stem for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_")]
    assert len(modules) >= 5
    for module in modules:
        assert f"python -m bench.{module} " in result.stdout, module
