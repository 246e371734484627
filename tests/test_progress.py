"""Progress of long work: drawn on a terminal, silent anywhere else, never nested."""

from __future__ import annotations

import io

from rich.console import Console

from pipelines.progress import progress, spark_progress


def _terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120), screen


def test_a_terminal_sees_units_done_of_the_total() -> None:
    console, screen = _terminal()
    with progress("backfill of three chunks", 3, console=console) as advance:
        for _ in range(3):
            advance()
    drawn = screen.getvalue()
    assert "backfill of three chunks" in drawn
    assert "3/3" in drawn


def test_output_that_is_not_a_terminal_gets_nothing(capfd) -> None:
    with progress("compute", 2) as advance:  # pytest's stderr is not a terminal
        advance()
        advance()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_work_inside_other_work_is_drawn_by_the_outer_bar_only() -> None:
    console, screen = _terminal()
    inner_console, inner_screen = _terminal()
    with progress("backfill", 1, console=console) as advance:
        with progress("compute of the chunk", 4, console=inner_console) as inner:
            inner()
        advance()
    assert inner_screen.getvalue() == ""
    assert "1/1" in screen.getvalue()
    # Once the outer bar is done, the next work is drawn again.
    with progress("materialize", 1, console=inner_console) as advance:
        advance()
    assert "materialize" in inner_screen.getvalue()


def test_a_spark_job_shows_the_tasks_of_its_running_stages(spark) -> None:
    import time

    console, screen = _terminal()
    with spark_progress(spark, "training set", console=console, poll_seconds=0.05):
        slow = spark.sparkContext.parallelize(range(4), 4).map(lambda x: time.sleep(0.5) or x)
        assert slow.count() == 4
    drawn = screen.getvalue()
    assert "training set: stage" in drawn
    assert "/4" in drawn and "tasks" in drawn


def test_a_spark_job_inside_other_work_draws_nothing_of_its_own(spark) -> None:
    console, _ = _terminal()
    stage_console, stage_screen = _terminal()
    with progress("compute", 1, console=console) as advance:
        with spark_progress(spark, "stages", console=stage_console, poll_seconds=0.05):
            assert spark.range(10).count() == 10
        advance()
    assert stage_screen.getvalue() == ""
