"""`feature-platform demo`: the whole platform end to end on the embedded defaults.

Generates a few days of events, ingests and computes their history, validates, applies
the Feast repo, materializes to Redis, reads online features, checks online/offline
consistency; then runs the last hours as a day in the life (hourly runs, ad requests
served between them with request logging, and the replay of every logged request through
the training-set builder: serving mode must differ on nothing); builds a click-through
training set as served and trains a baseline on it, and checks the test day's features for
drift against the training days'; runs the hourly DAG for the next hour through
Airflow; and finally streams the hour after it through Kafka at 60x real time, one minute, with
the stream writing fresh values to Redis.
Every step is one of the platform's own jobs; the demo only sequences and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import typer

from features import REGISTRY, AttributeView
from pipelines.interval import HOUR, Interval
from pipelines.reporting import run_reporting_errors
from pipelines.steps import (
    BACKFILL,
    CONSISTENCY,
    DRIFT,
    GENERATE,
    INGEST,
    MATERIALIZE,
    REPLAY,
    VALIDATE,
    StepFailedError,
)

DEMO_START = datetime(2026, 11, 1, tzinfo=UTC)
DEMO_DAYS = 5
DEMO_SCALE = 0.3
# The last hours of the period run hour by hour, with traffic (the evening peak).
LIVE_HOURS = 4
LIVE_REQUESTS_PER_HOUR = 120

T = TypeVar("T")


def _say(message: str = "") -> None:
    typer.echo(message)


def _indented(line: str) -> None:
    _say(f"   {line}")


@contextmanager
def _step(title: str) -> Iterator[None]:
    _say(f"== {title}")
    started = time.perf_counter()
    yield
    _say(f"   ({time.perf_counter() - started:.1f} s)")


def _timed(title: str, func: Callable[[], T]) -> T:
    with _step(title):
        return func()


def run_demo(
    *,
    days: int = DEMO_DAYS,
    scale: float = DEMO_SCALE,
    live_hours: int = LIVE_HOURS,
    with_airflow: bool = True,
) -> None:
    from pyspark.sql import functions as F

    from pipelines.config import settings
    from pipelines.feast_repo import feast_objects
    from pipelines.modeling import train_logistic_baseline
    from pipelines.monitoring.scores import score_report, write_score_report
    from pipelines.redis_server import ensure_redis
    from pipelines.serving.online import get_online_features_df
    from pipelines.serving.store import feature_store
    from pipelines.spark import get_spark, spark_log
    from pipelines.training import Mode, build_training_set, ctr_labels

    conf = settings()
    start = DEMO_START
    end = start + timedelta(days=days)
    live = end - timedelta(hours=live_hours)  # the evening peak of the last day
    _say(f"data directory: {conf.data_dir}")
    _say(
        f"period: [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC, scale {scale}; "
        f"history until {live:%Y-%m-%d %H:%M}, then {live_hours} live hours"
    )

    redis_url = _timed("redis", ensure_redis)
    _say(f"   redis at {redis_url}")
    with _step("spark"):
        spark = get_spark("feature-platform-demo")
        _say(f"   Spark's own output (warnings, jar resolution): {spark_log()}")

    with _step(GENERATE.title):
        # One hour more than the period: the Airflow run at the end ingests it.
        GENERATE.run(spark, Interval(start, end + HOUR), echo=_indented, scale=scale)

    with _step(f"{INGEST.title}, the history"):
        INGEST.run(spark, Interval(start, live), echo=_indented)

    with _step("compute the history's feature versions (features.*), day by day"):
        # The table below says more than the step's rows-per-table lines.
        quiet = BACKFILL.run(spark, Interval(start, live), echo=lambda line: None, force=True)
        written = quiet.summary
        _say(f"   {'table':<28} {'rows':>9} {'entities':>9} {'late versions':>14}")
        for view in REGISTRY.views:
            stats = (
                spark.table(view.table)
                .agg(
                    F.count("*").alias("rows"),
                    F.countDistinct(view.entity.join_key).alias("entities"),
                    F.count_if(F.col("created_timestamp") > F.col("event_timestamp")).alias("late"),
                )
                .collect()[0]
            )
            late = stats["late"] if not isinstance(view, AttributeView) else "-"
            _say(f"   {view.table:<28} {stats['rows']:>9,} {stats['entities']:>9,} {late!s:>14}")
        _say(f"   rows written this run: {sum(written.values()):,}")

    last_day = Interval(live - timedelta(days=1), live)
    with _step(f"{VALIDATE.title}: the versions learned in {last_day}"):
        VALIDATE.run(spark, last_day, echo=_indented)

    with _step("feast apply (objects built from features/)"):
        store = feature_store(redis_url)
        objects = list(feast_objects().values())
        store.apply(objects)
        _say(f"   applied {len(objects)} objects to project {store.project}")

    with _step(f"{MATERIALIZE.title}: the history [{start:%Y-%m-%d}, {live:%Y-%m-%d %H:%M})"):
        MATERIALIZE.run(spark, Interval(start, live), echo=_indented, redis_url=redis_url)

    with _step("online features (ctr_model) for a few members and ads"):
        examples = _example_entities(spark)
        frame = get_online_features_df("ctr_model", examples, redis_url=redis_url, as_of=live)
        # Two features of each view keep the table short; `feature-platform online` prints all.
        shown = [n for names in REGISTRY.resolve("ctr_model").values() for n in names[:2]]
        table = frame[["member_id", "ad_id", *shown]].T.to_string()
        with_pd_options(lambda: _say("\n".join(f"   {line}" for line in table.splitlines())))

    _consistency(spark, live)
    _day_in_the_life(spark, live, live_hours, redis_url)

    # Labels are final once late clicks have been ingested (ctr.maturity after their day).
    test_day = Interval(end - timedelta(days=2), end - timedelta(days=1))
    train = Interval(start + timedelta(days=1), test_day.start)
    with _step(
        f"click-through training sets as served (mode {Mode.SERVING.value}) and a baseline model"
    ):
        train_labels = ctr_labels(spark, start=train.start, end=train.end)
        test_labels = ctr_labels(spark, start=test_day.start, end=test_day.end)
        output = conf.ctr_training_set(test_day.start.date())
        test_set = build_training_set(
            spark, test_labels, "ctr_model", output=str(output), mode=Mode.SERVING
        )
        train_output = conf.data_dir / "training_sets" / "ctr" / f"train-{train.start:%Y-%m-%d}"
        train_set = build_training_set(
            spark, train_labels, "ctr_model", output=str(train_output), mode=Mode.SERVING
        )
        size = test_set.agg(F.count("*").alias("n"), F.avg("clicked").alias("rate")).collect()[0]
        _say(
            f"   training set for {test_day.start:%Y-%m-%d}: {size['n']:,} rows, "
            f"label rate {size['rate']:.3%}"
        )
        _say(f"   written to {output} (with the Delta versions it read)")
        names = [n for view_names in REGISTRY.resolve("ctr_model").values() for n in view_names]
        result = train_logistic_baseline(train_set, test_set, label="clicked", features=names)
        _say(
            f"   logistic regression: trained on {result.train_rows:,} rows "
            f"[{train.start:%Y-%m-%d}, {train.end:%Y-%m-%d}), "
            f"test AUC {result.auc:.3f} on {result.test_rows:,} rows of {test_day.start:%Y-%m-%d} "
            "(a constant predictor scores 0.500)"
        )
        scores = score_report(
            result.test_scores,
            label="label",
            training_scores=result.train_scores,
            binning="quantile",  # click-through scores of a few percent
        )
        for line in scores.lines():
            _indented(line)
        scores_page = conf.reports_dir / "model_scores" / f"ctr-{test_day.start:%Y-%m-%d}.html"
        write_score_report(scores_page, f"ctr baseline on {test_day.start:%Y-%m-%d}", scores)
        _indented(f"  report: {scores_page}")

    with _step(f"{DRIFT.title}: the test day's training set against the model's"):
        try:
            DRIFT.run(
                spark, test_day, echo=_indented, reference=str(train_output), current=str(output)
            )
        except StepFailedError as alert:
            # Information, not a failure of the demo: the 7- and 28-day windows are still
            # filling up over the demo's few days of history, and that is drift too.
            _indented(f"verdict: {alert} (windows longer than the history are still filling up)")

    if with_airflow:
        _airflow(end)
        _streaming_minute(spark, end + HOUR, scale, redis_url)

    _say("\nDone. Explore the tables with:")
    _say("   source .venv/bin/activate   # sets SPARK_CONF_DIR=spark_conf")
    _say("   spark-sql -e 'SHOW TABLES IN features'")
    _say(f"Reports: {conf.reports_dir}")


def _day_in_the_life(spark: Any, live: datetime, hours: int, redis_url: str) -> None:
    from pipelines.day_in_the_life import SERVICE, run_hours
    from pipelines.quality.replay import replay
    from pipelines.serving.request_log import RequestLog

    with _step(
        f"a day in the life: {hours} hourly runs from {live:%Y-%m-%d %H:%M}, "
        "ad requests served between them with request logging"
    ):
        with RequestLog(SERVICE, sample=1.0) as log:
            served = run_hours(
                spark,
                start=live,
                hours=hours,
                redis_url=redis_url,
                requests_per_hour=LIVE_REQUESTS_PER_HOUR,
                log=log,
            )
        for hour in served:
            _say(f"   run {hour.interval}: {hour.requests} requests served in {hour.traffic}")
    traffic = Interval(served[0].traffic.start, served[-1].traffic.end)
    with _step(f"replay the logged requests through the training-set builder, {traffic}"):
        REPLAY.run(spark, traffic, echo=_indented, services=[SERVICE])
        feast = replay(
            spark, start=traffic.start, end=traffic.end, services=[SERVICE], mode="feast"
        )
        differing = sorted((f for f in feast.features if f.differing), key=lambda f: -f.differing)
        _say(
            f"   for comparison, Feast-identical mode (latest row by event time, late data "
            f"included): {feast.rows_differing_ratio():.1%} of values differ from what was "
            f"served, {len(differing)} of {len(feast.features)} features"
        )
        for f in differing[:3]:
            _say(f"     {f.feature:<32} {f.differing_ratio:6.1%} of requests")


def with_pd_options(func: Callable[[], Any]) -> Any:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_rows", 80):
        return func()


def _example_entities(spark: Any) -> list[dict[str, Any]]:
    """The busiest member and ads of the last impressions: entities with values to show."""
    from pyspark.sql import functions as F

    from features.sources import ad_impressions

    rows = (
        spark.table(ad_impressions.table)
        .groupBy("member_id", "ad_id")
        .agg(F.max("event_timestamp").alias("last_seen"))
        .orderBy(F.desc("last_seen"), "member_id", "ad_id")
        .limit(3)
        .collect()
    )
    examples = [{"member_id": int(r["member_id"]), "ad_id": int(r["ad_id"])} for r in rows]
    examples.append({"member_id": -1, "ad_id": -1})  # never materialized: nulls, not errors
    return examples


def _consistency(spark: Any, as_of: datetime) -> None:
    with _step(f"{CONSISTENCY.title} as of {as_of:%Y-%m-%d %H:%M}"):
        CONSISTENCY.run(spark, Interval(as_of - HOUR, as_of), echo=_indented)


def _airflow(end: datetime) -> None:
    from pipelines.airflow_local import run_dag_once
    from pipelines.run_logs import output_to, run_log_path

    interval_end = end + HOUR
    with _step(
        f"Airflow: feature_pipeline for [{end:%H:%M}, {interval_end:%H:%M}) via dag.test() "
        "(it also replays the hour before)"
    ):
        log = run_log_path("airflow")
        # Airflow's task runner logs every state change; its log is kept, not printed.
        with output_to(log):
            states = run_dag_once("feature_pipeline", end, interval_end, retries=0)
        for task_id, state in states.items():
            _say(f"   {task_id:<22} {state}")
        _say(f"   the tasks' reports and Airflow's log: {log}")


STREAM_SPEED = 60.0  # an hour of traffic in a minute


def _streaming_minute(spark: Any, start: datetime, scale: float, redis_url: str) -> None:
    import logging
    import threading
    from collections import Counter

    from pipelines.config import settings
    from pipelines.day_in_the_life import SERVICE
    from pipelines.generate.world import GeneratorConfig
    from pipelines.run_logs import run_log_path
    from pipelines.serving.direct import OnlineReader
    from pipelines.serving.request_log import RequestLog, log_directory
    from pipelines.streaming.broker import ensure_kafka, local_broker
    from pipelines.streaming.fresh import fresh_values
    from pipelines.streaming.land import checkpoint_dir, land_events
    from pipelines.streaming.publish import arrival_order, publish
    from pipelines.streaming.topics import create_topics

    traffic = Interval(start, start + HOUR)
    config = GeneratorConfig(scale=scale)
    # The stream's requests are logged apart from the hourly traffic's: they are replayed
    # in realtime mode, the hourly ones in serving mode.
    log_root = settings().data_dir / "logs" / "served-stream"
    with _step(
        f"the real-time path: {traffic} replayed through Kafka at {STREAM_SPEED:g}x real time, "
        "the stream landing it and writing fresh values to Redis, ad requests served from them"
    ):
        servers = ensure_kafka()
        create_topics(servers)
        ordered = arrival_order(traffic, config)
        plays = [
            (arrived, row["member_id"])
            for arrived, source, row in ordered
            if source.name == "playback_events" and row.get("member_id") is not None
        ]
        ad_requests = [
            (row["member_id"], row["ad_id"])
            for _, source, row in ordered
            if source.name == "ad_impressions"
            and row.get("member_id") is not None
            and row.get("ad_id") is not None
        ]
        plays_of = Counter(m for _, m in plays)
        member = max(plays_of, key=plays_of.__getitem__)
        fresh = fresh_values(checkpoint_dir(), redis_url)
        # The stream logs a line per micro-batch: to a file, as the engines' output.
        stream_log = run_log_path("stream")
        to_file = logging.FileHandler(stream_log)
        stream_logger = logging.getLogger("pipelines.streaming")
        stream_logger.addHandler(to_file)
        stream_logger.setLevel(logging.INFO)
        stream_logger.propagate = False
        query = land_events(spark, bootstrap_servers=servers, trigger_seconds=1.0, fresh=fresh)
        paced_from: list[float] = []  # when the replay's pacing started (monotonic)
        publisher = threading.Thread(
            target=publish,
            args=(servers,),
            kwargs={
                "start": traffic.start,
                "end": traffic.end,
                "speed": STREAM_SPEED,
                "config": config,
                "on_start": paced_from.append,
                "ordered": ordered,
            },
            daemon=True,
        )
        publisher.start()
        began = time.monotonic()
        features = ["member_engagement:plays_count_1h", "member_engagement:plays_count_1d"]
        _say(
            f"   member {member}, {plays_of[member]} of whose plays arrive in the hour (seconds: values)"
        )
        delays: list[float] = []
        shown: tuple[Any, ...] | None = None
        seen = None
        caught_up = traffic.end - timedelta(minutes=1)
        served_at: list[datetime] = []
        log = RequestLog(SERVICE, sample=1.0, directory=log_directory(SERVICE, log_root))
        with (
            log,
            OnlineReader(features, redis_url=redis_url) as reader,
            OnlineReader(SERVICE, redis_url=redis_url, log=log) as ad_server,
        ):
            while publisher.is_alive() or (seen or start) < caught_up:
                if time.monotonic() - began > 300 or query.exception() is not None:
                    break
                time.sleep(0.5)
                instant = fresh.last_instant()
                if instant is None or instant < traffic.start or not paced_from:
                    continue
                # Ad requests for members and ads of the hour, at the replay's clock.
                clock = traffic.start + timedelta(
                    seconds=(time.monotonic() - paced_from[0]) * STREAM_SPEED
                )
                if clock < traffic.end and ad_requests:
                    for _ in range(10):
                        pair = ad_requests[len(served_at) * 7919 % len(ad_requests)]
                        ad_server.get([{"member_id": pair[0], "ad_id": pair[1]}], as_of=clock)
                        served_at.append(clock)
                if instant == seen:
                    continue
                seen = instant
                # When the newest event the values hold was published (the replay's pacing).
                published = paced_from[0] + (instant - traffic.start).total_seconds() / STREAM_SPEED
                delays.append(time.monotonic() - published)
                values = reader.get([{"member_id": member}])
                now = (values["plays_count_1h"][0], values["plays_count_1d"][0])
                if now == shown:
                    continue
                shown = now
                arrived = sum(1 for a, m in plays if m == member and a < instant)
                _say(
                    f"   {time.monotonic() - paced_from[0]:6.1f}  as of {instant:%H:%M:%S} "
                    f"({arrived} of its plays arrived, the newest published {delays[-1]:.1f} s "
                    f"before): plays_count_1h {now[0]}, plays_count_1d {now[1]}"
                )
        query.stop()
        publisher.join()
        stream_logger.removeHandler(to_file)
        stream_logger.propagate = True
        to_file.close()
        if query.exception() is not None:
            raise StepFailedError(f"the stream failed: {query.exception()}")
        if delays:
            ordered_delays = sorted(delays)
            _say(
                f"   {len(delays)} updates; the newest event of each was readable in Redis "
                f"{ordered_delays[len(ordered_delays) // 2]:.1f} s (median), "
                f"{ordered_delays[-1]:.1f} s (max) after it was published"
            )
        _say(f"   the stream's log (a line per micro-batch): {stream_log}")
        if not settings().kafka_bootstrap_servers:
            local_broker().stop()  # started above; `feature-platform kafka start` restarts it
    if served_at:
        requested = Interval(served_at[0], served_at[-1] + timedelta(microseconds=1))
        with _step(
            f"replay the {len(served_at)} ad requests served from the stream in realtime mode "
            "(each value rebuilt at the instant the stream had written it as of)"
        ):
            replayed = REPLAY.run(
                spark,
                requested,
                echo=_indented,
                services=[SERVICE],
                mode="realtime",
                log_root=log_root,
            )
            age = replayed.summary["values_age"].get(SERVICE)
            if age:
                _say(
                    f"   (replayed time: at {STREAM_SPEED:g}x, the values were "
                    f"{age[0] / STREAM_SPEED:.0f} s old in wall time, the stream's micro-batch cycle)"
                )
    else:
        # Requests are served at the replay's clock within the hour, once the stream has
        # written a value of it: a first micro-batch slower than the replayed hour leaves none.
        _say(
            "   no ad request was served from the stream within the replayed hour (its first "
            "micro-batch ended after the hour's traffic): the realtime replay is skipped"
        )


def demo_command(
    days: int = typer.Option(5, "--days", min=2, help="Days of data to generate"),
    scale: float = typer.Option(0.3, "--scale", min=0.01, help="Data volume multiplier"),
    live_hours: int = typer.Option(
        4, "--live-hours", min=1, max=12, help="Last hours run hourly, with traffic and replay"
    ),
    airflow: bool = typer.Option(True, "--airflow/--no-airflow", help="Also run the hourly DAG"),
) -> None:
    """Run the whole platform end to end on the embedded defaults and report what it did."""
    run_reporting_errors(
        run_demo, days=days, scale=scale, live_hours=live_hours, with_airflow=airflow
    )
