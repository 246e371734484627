"""Progress of long work: chunks of a backfill, views of a compute or a materialization,
and the Spark stages of a job that has no units of its own (a training set, a replay).

On a terminal it is a bar on stderr with the elapsed time and an estimate of what
remains, drawn by rich and erased when the work is done, so the summary that follows
stays readable. Anywhere else (CI, Airflow's task logs, a pipe) it prints nothing.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Advance = Callable[[], None]


# rich draws one live display at a time: work inside other work (the compute of each
# chunk of a backfill) is shown by the outer bar only.
_drawing = False


def _interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _bar(console: Any, unit: str | None = None) -> Iterator[Any]:
    """A rich Progress on `console` (default: stderr if it is a terminal), or None where
    nothing is to be drawn."""
    global _drawing
    if _drawing or (console is None and not _interactive()):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    columns += [TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
    _drawing = True
    try:
        with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
            yield bar
    finally:
        _drawing = False


@contextmanager
def progress(description: str, total: int, *, console: Any = None) -> Iterator[Advance]:
    """Yield a function to call once per finished unit of `total`.

    `console`: a rich Console to draw on (by default stderr, only if it is a terminal).
    """
    with _bar(console) as bar:
        if bar is None:
            yield lambda: None
            return
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


@contextmanager
def spark_progress(
    spark: Any, description: str, *, console: Any = None, poll_seconds: float = 0.5
) -> Iterator[None]:
    """While the body runs, draw the tasks done of the Spark stages running, as Spark's
    status tracker reports them (what its console progress bar shows, kept out of the
    JVM's output), with the elapsed time and an estimate for the stages under way."""
    with _bar(console, unit="tasks") as bar:
        if bar is None:
            yield
            return
        tracker = spark.sparkContext.statusTracker()
        task = bar.add_task(description, total=None)
        finished = threading.Event()

        def poll() -> None:
            while not finished.wait(poll_seconds):
                stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
                running = [stage for stage in stages if stage is not None]
                if not running:
                    continue
                bar.update(
                    task,
                    completed=sum(stage.numCompletedTasks for stage in running),
                    total=sum(stage.numTasks for stage in running),
                    description=f"{description}: stage "
                    + ", ".join(str(stage.stageId) for stage in running),
                )

        poller = threading.Thread(target=poll, name="spark-progress", daemon=True)
        poller.start()
        try:
            yield
        finally:
            finished.set()
            poller.join()
