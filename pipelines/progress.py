"""Progress of long work (chunks of a backfill, views of a compute or a materialization).

On a terminal it is a bar on stderr with the elapsed time and an estimate of what
remains, drawn by rich and erased when the work is done, so the summary that follows
stays readable. Anywhere else (CI, Airflow's task logs, a pipe) it prints nothing.
"""

from __future__ import annotations

import sys
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
def progress(description: str, total: int, *, console: Any = None) -> Iterator[Advance]:
    """Yield a function to call once per finished unit of `total`.

    `console`: a rich Console to draw on (by default stderr, only if it is a terminal).
    """
    global _drawing
    if _drawing or (console is None and not _interactive()):
        yield lambda: None
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

    _drawing = True
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)
    finally:
        _drawing = False
