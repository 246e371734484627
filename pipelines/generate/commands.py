"""Body of `feature-platform generate`: arguments are checked before Spark starts."""

from __future__ import annotations

from typing import Any

import typer

from pipelines.generate.world import DEFAULT_HOSTILE_SHARE, SHIFTS, GeneratorConfig
from pipelines.interval import Interval, parse_time
from pipelines.reporting import run_reporting_errors, run_step
from pipelines.steps import GENERATE

START_HELP = "Start of the arrival interval (inclusive), UTC, e.g. 2026-01-01 or 2026-01-01T05:00"
END_HELP = "End of the arrival interval (exclusive), UTC"
SHIFT_HELP = "Move a population from --shift-from on: " + "; ".join(
    f"{kind}: {what}" for kind, what in SHIFTS.items()
)


def _generate(start: str, end: str, config: dict[str, Any]) -> None:
    interval = Interval.parse(start, end)
    if config.get("shift_from") is not None:
        config = {**config, "shift_from": parse_time(config["shift_from"])}
    GeneratorConfig(**config)  # checked before Spark starts
    run_step(GENERATE, interval, **config)


def generate_command(
    start: str = typer.Option(..., "--start", help=START_HELP),
    end: str = typer.Option(..., "--end", help=END_HELP),
    scale: float = typer.Option(1.0, "--scale", help="Size knob: about 37k events per day at 1"),
    seed: int = typer.Option(7, "--seed", help="The same seed and scale give the same rows"),
    late_share: float = typer.Option(0.02, "--late-share", help="Share of rows 1-12 h late"),
    malformed_share: float = typer.Option(
        0.01, "--malformed-share", help="Share of malformed event rows"
    ),
    duplicate_share: float = typer.Option(
        0.005, "--duplicate-share", help="Share of event rows delivered twice"
    ),
    hostile_share: float = typer.Option(
        DEFAULT_HOSTILE_SHARE,
        "--hostile-share",
        help="Share of rows a broken producer adds (NaN, 1970, unknown categories, ...)",
    ),
    shift: str | None = typer.Option(
        None,
        "--shift",
        help=SHIFT_HELP,
    ),
    shift_from: str | None = typer.Option(
        None, "--shift-from", help="When the shift starts (UTC, event time)"
    ),
) -> None:
    """Write the raw rows (dimensions and events) that arrive within [start, end)."""
    config = {
        "scale": scale,
        "seed": seed,
        "late_share": late_share,
        "malformed_share": malformed_share,
        "duplicate_share": duplicate_share,
        "hostile_share": hostile_share,
        "shift": shift,
        "shift_from": shift_from,
    }
    run_reporting_errors(_generate, start, end, config)
