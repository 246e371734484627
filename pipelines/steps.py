"""The pipeline's steps, each defined once: what it runs, what it reports, how it fails.

A step runs one job over an explicit data interval `[start, end)` and returns a
`StepResult`: the lines a person reads, a small JSON-able summary (Airflow keeps it in
XCom) and, for the checking steps, a verdict. `Step.run` prints the lines and turns a
failed verdict into `StepFailedError`. Every front end runs the same step objects
through it:
- the CLI (`feature-platform ingest | compute | ...`), whose one error boundary
  (`pipelines.reporting`) exits 1 on a failed verdict and 2 on an error the user caused;
- the Airflow tasks (`pipelines.tasks`), where either fails the task;
- the demo and the day-in-the-life runner, which stop at the first failure.

The jobs import lazily: the CLI checks its arguments before Spark is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipelines.errors import NothingToCheckError, PlatformError
from pipelines.interval import Interval

Echo = Callable[[str], None]


class StepFailedError(PlatformError):
    """A checking step ran, and its verdict is FAIL (its lines say where)."""


@dataclass(frozen=True)
class StepResult:
    lines: tuple[str, ...]
    summary: Mapping[str, Any]
    failure: str | None = None  # one line: why the verdict is FAIL

    @property
    def success(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    job: Callable[..., StepResult] = field(repr=False)

    def run(
        self, spark: Any, interval: Interval, *, echo: Echo = print, **options: Any
    ) -> StepResult:
        """Run the step over `interval`, print its lines through `echo`, and raise
        `StepFailedError` when its verdict is FAIL."""
        result = self.job(spark, interval, **options)
        for line in result.lines:
            echo(line)
        if result.failure is not None:
            raise StepFailedError(f"{self.name} of {interval} failed: {result.failure}")
        return result


def _generate(spark: Any, interval: Interval, **config: Any) -> StepResult:
    from features.catalog import RAW, table_name
    from pipelines.generate.job import generate
    from pipelines.generate.world import SHIFTS, GeneratorConfig

    checked = GeneratorConfig(**config)
    counts = generate(
        spark,
        start=interval.start,
        end=interval.end,
        scale=checked.scale,
        seed=checked.seed,
        late_share=checked.late_share,
        malformed_share=checked.malformed_share,
        duplicate_share=checked.duplicate_share,
        hostile_share=checked.hostile_share,
        shift=checked.shift,
        shift_from=checked.shift_from,
    )
    lines = [
        f"generated raw data arriving in {interval} (scale {checked.scale:g}, seed {checked.seed})"
    ]
    if checked.shift is not None and checked.shift_from is not None:
        lines.append(
            f"  with a shift from {checked.shift_from.isoformat()}: {SHIFTS[checked.shift]}"
        )
    lines += [f"  {table_name(RAW, name):<20} {rows:>12,} rows" for name, rows in counts.items()]
    return StepResult(tuple(lines), dict(counts))


def _ingest(spark: Any, interval: Interval) -> StepResult:
    from pipelines.ingest.job import ingest

    report = ingest(spark, start=interval.start, end=interval.end)
    summary = {
        name: {"raw": c.raw, "clean": c.clean, "quarantined": dict(c.quarantined)}
        for name, c in report.tables.items()
    }
    return StepResult(tuple(report.lines()), summary)


def _written(written: Mapping[str, int]) -> StepResult:
    return StepResult(
        tuple(f"{table}: {rows} rows" for table, rows in written.items()), dict(written)
    )


def _compute(
    spark: Any, interval: Interval, views: Sequence[str] | None = None, parallelism: int = 2
) -> StepResult:
    from pipelines.compute.job import compute

    return _written(
        compute(spark, start=interval.start, end=interval.end, views=views, parallelism=parallelism)
    )


def _backfill(
    spark: Any,
    interval: Interval,
    chunk_hours: int = 24,
    views: Sequence[str] | None = None,
    force: bool = False,
    parallelism: int = 2,
) -> StepResult:
    from pipelines.compute.backfill import backfill

    return _written(
        backfill(
            spark,
            start=interval.start,
            end=interval.end,
            chunk=timedelta(hours=chunk_hours),
            views=views,
            force=force,
            parallelism=parallelism,
        )
    )


def _validate(
    spark: Any,
    interval: Interval,
    views: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
) -> StepResult:
    from pipelines.quality.gate import validate

    report = validate(spark, start=interval.start, end=interval.end, views=views, tables=tables)
    failure = None
    if not report.success:
        failed = ", ".join(t.name for t in report.failed)
        failure = f"{failed} (see {report.docs_index})"
    summary = {"success": report.success, "tables": len(report.tables)}
    return StepResult(tuple(report.render().splitlines()), summary, failure)


def _materialize(
    spark: Any,
    interval: Interval,
    views: Sequence[str] | None = None,
    redis_url: str | None = None,
) -> StepResult:
    from pipelines.serving.materialize import materialize

    report = materialize(
        spark, start=interval.start, end=interval.end, views=views, redis_url=redis_url
    )
    summary = {v.view: {"entities": v.rows, "written": v.written} for v in report.views}
    return StepResult(tuple(report.summary().splitlines()), summary)


def _consistency(
    spark: Any,
    interval: Interval,
    sample: int = 1000,
    views: Sequence[str] | None = None,
    tolerance: float = 0.0,
) -> StepResult:
    """Redis against the Delta tables as a run over the interval leaves them: as of its end."""
    from pipelines.quality.consistency import check_consistency

    report = check_consistency(
        spark, as_of=interval.end, sample=sample, views=views, tolerance=tolerance
    )
    summary = {"success": report.success, "entities": report.sampled_entities}
    failure = None if report.success else report.summary()
    return StepResult(tuple(report.lines()), summary, failure)


def _replay(
    spark: Any,
    interval: Interval,
    services: Sequence[str] | None = None,
    mode: str = "serving",
    tolerance: float = 0.0,
    log_root: Path | None = None,
) -> StepResult:
    from pipelines.quality.replay import replay

    report = replay(
        spark,
        start=interval.start,
        end=interval.end,
        services=services,
        mode=mode,
        tolerance=tolerance,
        log_root=log_root,
    )
    lines = tuple(report.lines())
    summary = {
        "success": report.success,
        "requests": report.requests,
        "values_age": report.values_age,
    }
    return StepResult(lines, summary, None if report.success else lines[0])


def _training_set(spark: Any, interval: Interval) -> StepResult:
    """The interval's CTR training set as served (`Mode.SERVING`), once its labels are mature,
    under `training_sets/ctr/<first day>` in the data directory."""
    from pipelines.config import settings
    from pipelines.training import Mode, build_training_set
    from pipelines.training.labels import ctr_labels

    output = settings().ctr_training_set(interval.start.date())
    labels = ctr_labels(spark, start=interval.start, end=interval.end)
    frame = build_training_set(spark, labels, "ctr_model", output=str(output), mode=Mode.SERVING)
    rows = frame.count()
    line = f"training set of {interval} ({Mode.SERVING.value}): {rows:,} rows in {output}"
    return StepResult((line,), {"output": str(output), "rows": rows, "mode": Mode.SERVING.value})


def _drift(
    spark: Any,
    interval: Interval,
    reference: Interval | str | None = None,
    current: Any = None,
    features: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
) -> StepResult:
    """The interval's feature values (or `current`: a table, or a `ServedLog`) against the
    reference; FAIL when any feature alerts. Without a reference: the daily check, the
    interval's CTR training set, and what the CTR service served in the interval where it
    was logged, each against the production model's training set
    (`monitoring.job.model_training_sets`)."""
    from pipelines.monitoring.drift import Verdict
    from pipelines.monitoring.job import DAILY_SERVICE, ServedLog, drift, model_training_sets

    currents = [interval if current is None else current]
    if reference is None:
        reference, training_set = model_training_sets(interval)
        currents = [training_set, ServedLog(DAILY_SERVICE, interval)]
    chosen_features = list(features) if features else None
    chosen_views = list(views) if views else None
    reports = []
    lines: list[str] = []
    for side in currents:
        try:
            report = drift(
                spark,
                current=side,
                reference=reference,
                features=chosen_features,
                views=chosen_views,
            )
        except NothingToCheckError as nothing:
            if len(currents) == 1:
                raise
            lines.append(f"{nothing}: what it served is not checked")
            continue
        reports.append(report)
        lines += report.lines()
    alerts = sorted({name for report in reports for name in report.named(Verdict.ALERT)})
    warnings = sorted({name for report in reports for name in report.named(Verdict.WARN)})
    summary = {
        "verdict": (Verdict.ALERT if alerts else Verdict.WARN if warnings else Verdict.OK).value,
        "alert": alerts,
        "warn": warnings,
        "report": [str(report.report_path) for report in reports],
        "run_id": [report.run_id for report in reports],
    }
    failure = f"drift past the alert threshold in {', '.join(alerts)}" if alerts else None
    return StepResult(tuple(lines), summary, failure)


GENERATE = Step("generate", "generate raw events (raw.*)", _generate)
INGEST = Step("ingest", "ingest: raw -> clean, malformed rows -> quarantine", _ingest)
COMPUTE = Step("compute", "compute the feature versions learned in the interval", _compute)
BACKFILL = Step("backfill", "compute chunk by chunk, skipping completed chunks", _backfill)
VALIDATE = Step("validate", "validate with Great Expectations", _validate)
MATERIALIZE = Step("materialize", "materialize the learned versions to Redis", _materialize)
CONSISTENCY = Step("consistency", "online/offline consistency", _consistency)
REPLAY = Step("replay", "replay the logged requests through the training-set builder", _replay)
DRIFT = Step("drift", "feature drift against a reference", _drift)
TRAINING_SET = Step("training_set", "click-through training set as served", _training_set)

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        GENERATE,
        INGEST,
        COMPUTE,
        BACKFILL,
        VALIDATE,
        MATERIALIZE,
        CONSISTENCY,
        REPLAY,
        TRAINING_SET,
        DRIFT,
    )
}


def step_named(name: str) -> Step:
    if name not in STEPS:
        raise PlatformError(f"unknown step {name!r} (known: {', '.join(STEPS)})")
    return STEPS[name]
