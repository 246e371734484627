"""Where the engines' own output goes: one file per run under `<data dir>/logs/runs/`.

Spark's JVM (its dependency resolution on the first start, its warnings) and Airflow's
task runner write much that is not the platform's story. They write to the process's
file descriptors, not through Python objects that could be swapped, so the output is
redirected at the descriptor level: a JVM started inside `output_to` keeps writing to
the file for its whole life, while the Python process gets its terminal back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipelines.config import settings


def run_log_path(kind: str) -> Path:
    """A new log file for `kind` (spark, airflow, ...), named by the UTC time and the pid."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = settings().data_dir / "logs" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}-{stamp}-{os.getpid()}.log"


@contextmanager
def output_to(path: Path) -> Iterator[Path]:
    """Send everything written to stdout and stderr (by Python or by child processes
    started meanwhile) to `path`, appending."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # a process without standard descriptors: nothing to redirect
        yield path
        return
    with open(path, "ab") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield path
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
