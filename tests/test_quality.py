"""Data-quality gate: suites derived from the declarations, run with Great Expectations.

Feature tables are synthesized to satisfy features/core.py (no compute engine): entity
`k` has had `k` events in every hour since its first one, all arriving within their hour,
so a count over window `w` is `k * min(w, hours active)` and every row has one version,
created at its own hour (what `compute` writes for on-time data). One good day and one faulty day are written once; each
validation run covers several tables and the assertions share its report. The run over
every table of the good day (about ten suites) is marked slow.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from features import REGISTRY, Aggregation, AttributeView, EventSource, FeatureView, Op
from features.catalog import CLEAN, FEATURES, table_name
from features.entities import member
from pipelines.delta_io import replace_where, table_exists
from pipelines.errors import PlatformError
from pipelines.feature_tables import PARTITION_COLUMN, feature_table_schema
from pipelines.interval import HOUR, Interval
from pipelines.quality import QualityRunner, ValidationReport, validate
from pipelines.quality import expectations as ex
from pipelines.quality.suites import (
    clean_table_suite,
    distinct_count_bounds,
    event_sources,
    feature_view_suite,
    nested_window_pairs,
)
from pipelines.tables import CLEAN_EVENTS, clean_table

# Far from the intervals other tests write, since the catalog is shared.
GOOD = Interval.parse("2031-01-01T06:00", "2031-01-01T12:00")
FAULTY = Interval.parse("2031-01-02T06:00", "2031-01-02T12:00")
WRITTEN = Interval.parse("2031-01-01", "2031-01-03")
ENTITIES = (1, 2, 3)
FAULTY_VIEWS = ["member_engagement", "title_popularity"]


# ---------------------------------------------------------------- synthetic tables


def _hours(interval: Interval) -> list[datetime]:
    return [c.start for c in interval.chunks(HOUR)]


def _value(value_type: str, key: int) -> Any:
    return {
        "int64": key * 10,
        "float64": key + 0.5,
        "string": f"v{key}",
        "date": date(2030, 1, key),
        "timestamp": datetime(2030, 1, 1, tzinfo=UTC),
    }[value_type]


def feature_row(view: FeatureView, key: int, ts: datetime, hours_active: int) -> dict[str, Any]:
    """The row of `view` for entity `key` at `ts`, consistent with the declared semantics."""
    row: dict[str, Any] = {
        view.entity.join_key: key,
        "event_timestamp": ts,
        "created_timestamp": ts,
        PARTITION_COLUMN: ts.date(),
    }
    for feature in view.features:
        if feature.ratio is not None:
            continue
        assert feature.window is not None and feature.aggregation is not None
        events = key * min(feature.window.hours, hours_active)
        row[feature.name] = {
            Op.COUNT: events,
            Op.SUM: events * 30.0,
            Op.AVG: 30.0,
            Op.MIN: 30.0,
            Op.MAX: 30.0,
            Op.APPROX_DISTINCT: min(events, 3),
            Op.LAST: _value(feature.value_type, key),
        }[feature.op]
    for ratio in view.ratios:
        num, den = row[ratio.numerator], row[ratio.denominator]
        row[ratio.name] = min(1.0, (num + ratio.prior * ratio.weight) / (den + ratio.weight))
    return row


def attribute_row(view: AttributeView, key: int, ts: datetime) -> dict[str, Any]:
    row = {f.name: _value(f.value_type, key) for f in view.features}
    row |= {
        view.entity.join_key: key,
        "event_timestamp": ts,
        "created_timestamp": ts.replace(minute=0, second=0, microsecond=0) + HOUR,
        PARTITION_COLUMN: ts.date(),
    }
    return row


def clean_row(source: EventSource, key: int, hour: datetime) -> dict[str, Any]:
    row = {c: _value(t, key) for c, t in source.columns.items()}
    row |= {c: f"{source.name}-{key}-{hour:%d%H}" for c in source.columns if c.endswith("_id")}
    row |= {c: key for c in ("member_id", "title_id", "ad_id") if c in source.columns}
    row |= {c: values[0] for c, values in source.validity.allowed.items()}
    row |= {
        "watch_seconds": 30.0,
        "event_timestamp": hour + timedelta(minutes=5),
        "ingestion_timestamp": hour + timedelta(minutes=6),
        "event_date": hour.date(),
    }
    return row


def day_of_feature_rows(view: FeatureView, day: datetime) -> list[dict[str, Any]]:
    """13 hours of rows (the interval's (06:00, 12:00] and the hours before) for every entity."""
    return [
        feature_row(view, key, day + h * HOUR, hours_active=h + 1)
        for h in range(13)
        for key in ENTITIES
    ]


def write(spark, table: str, schema, rows: list[dict[str, Any]], column: str) -> None:
    df = spark.createDataFrame([tuple(r.get(n) for n in schema.names) for r in rows], schema)
    exists = table_exists(spark, table)
    replace_where(
        df,
        table,
        predicate=(
            f"{column} >= TIMESTAMP '{WRITTEN.start:%Y-%m-%d %H:%M}'"
            f" AND {column} < TIMESTAMP '{WRITTEN.end:%Y-%m-%d %H:%M}'"
        ),
        partition_by=() if exists else (PARTITION_COLUMN,),
    )


def faulty_day(view_name: str, good: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The second day's rows of a view, with the faults this test plants in it."""
    if view_name == "member_engagement":
        # Six rows left in the interval (a collapse from 18), each but one faulty.
        before = [r for r in good if r["event_timestamp"].hour <= 6]
        at = {(r["member_id"], r["event_timestamp"].hour): r for r in good}
        negative = dict(at[(2, 7)], plays_count_1h=-1)
        null_key = dict(at[(1, 8)], member_id=None)
        not_nested = dict(at[(3, 10)], plays_count_1d=at[(3, 10)]["plays_count_7d"] + 5)
        duplicated = at[(1, 9)]
        return [*before, negative, null_key, duplicated, dict(duplicated), not_nested, at[(1, 11)]]
    if view_name == "title_popularity":  # stale: nothing after 07:00, and two broken rows
        rows = [r for r in good if r["event_timestamp"].hour <= 7]
        by_title = {r["title_id"]: r for r in rows if r["event_timestamp"].hour == 7}
        by_title[2]["title_viewers_approx_distinct_1d"] = by_title[2]["title_plays_count_1d"] + 5
        by_title[3]["title_watch_seconds_sum_1d"] = by_title[3]["title_watch_seconds_sum_7d"] + 1
        return rows
    return good


@pytest.fixture(scope="module")
def tables(spark) -> None:
    days = [WRITTEN.start, WRITTEN.start + timedelta(days=1)]
    for view in REGISTRY.views:
        schema = feature_table_schema(view)
        if isinstance(view, FeatureView):
            good, second = (day_of_feature_rows(view, d) for d in days)
            rows = good + faulty_day(view.name, second)
        else:
            rows = [
                attribute_row(view, key, interval.start + timedelta(minutes=17 + key))
                for interval in (GOOD, FAULTY)
                for key in ENTITIES
            ]
            if view.name == "ad_profile":
                rows.append(dict(rows[-1], ad_id=None))
        write(spark, view.table, schema, rows, "event_timestamp")
    for source in event_sources():
        rows = [
            clean_row(source, key, hour)
            for interval in (GOOD, FAULTY)
            for hour in _hours(interval)
            for key in ENTITIES
        ]
        if source.name == "playback_events":
            hour = FAULTY.start + HOUR
            rows.append(dict(clean_row(source, 4, hour), member_id=None))
            rows.append(dict(clean_row(source, 5, hour), watch_seconds=-5.0))
        schema = CLEAN_EVENTS[source.name]
        write(spark, clean_table(source.name), schema, rows, "ingestion_timestamp")


@pytest.fixture(scope="module")
def good_report(spark, tables) -> ValidationReport:
    started = time.perf_counter()
    report = validate(spark, start=GOOD.start, end=GOOD.end)
    print(f"\nvalidate, all views and clean tables: {time.perf_counter() - started:.1f}s")
    print(report.render())
    return report


@pytest.fixture(scope="module")
def faulty_report(spark, tables) -> ValidationReport:
    report = validate(
        spark,
        start=FAULTY.start,
        end=FAULTY.end,
        views=FAULTY_VIEWS,
        tables=[table_name(CLEAN, "playback_events")],
    )
    print("\n" + report.render())
    return report


def descriptions(report: ValidationReport, table: str, column: str) -> list[str]:
    return [f.description for f in report.table(table).failures_about(column)]


# ---------------------------------------------------------------- suites (no Spark)


def test_suites_follow_the_declarations_not_a_column_list():
    plays = EventSource("plays", columns={"member_id": "int64", "title_id": "int64"})
    view = FeatureView(
        "toy",
        entity=member,
        aggregations=(
            Aggregation(plays, Op.COUNT, ("6h", "1h", "2d"), alias="n"),
            Aggregation(plays, Op.APPROX_DISTINCT, ("1h", "3d"), column="title_id", alias="t"),
            Aggregation(plays, Op.MAX, ("1h", "2d"), column="title_id"),
        ),
    )
    pairs = [(a.name, b.name) for a, b in nested_window_pairs(view)]
    assert pairs == [
        ("n_count_1h", "n_count_6h"),
        ("n_count_6h", "n_count_2d"),
        ("t_approx_distinct_1h", "t_approx_distinct_3d"),
    ]
    # Only the 1h distinct count has a count over the same window to be bounded by.
    bounds = [(a.name, b.name) for a, b in distinct_count_bounds(view)]
    assert bounds == [("t_approx_distinct_1h", "n_count_1h")]

    suite = feature_view_suite(view, interval=GOOD, previous_rows=40)
    texts = [e.description or "" for e in suite]
    for name in ("n_count_1h", "n_count_6h", "n_count_2d", "t_approx_distinct_3d"):
        assert f"{view.table}: {name} >= 0" in " ".join(texts)
    assert not any("title_id_max_1h >= 0" in t for t in texts)  # a max may be anything
    assert any("between 20 and 80 rows" in t for t in texts)
    assert any("latest event_timestamp >= 2031-01-01T10:00:00+00:00" in t for t in texts)
    without_history = feature_view_suite(view, interval=GOOD, previous_rows=0)
    assert not any("rows (" in (e.description or "") for e in without_history)


def test_clean_suites_check_the_declared_validity():
    suites = {s.name: clean_table_suite(s, interval=GOOD) for s in event_sources()}
    assert set(suites) == {"playback_events", "ad_impressions", "ad_clicks"}
    playback = " | ".join(e.description or "" for e in suites["playback_events"])
    for column in ("event_id", "member_id", "title_id", "watch_seconds", "event_timestamp"):
        assert f"{column} is never null" in playback
    assert "watch_seconds >= 0.0 and watch_seconds <= 86400.0 (declared range)" in playback
    assert "watch_seconds is finite" in playback
    assert "device is one of 'tv'" in playback
    assert "event_date is the date of event_timestamp" in playback
    assert "event_timestamp <= ingestion_timestamp + 5 min" in playback
    assert "ad_id is never null" in " ".join(e.description or "" for e in suites["ad_clicks"])


# ---------------------------------------------------------------- GE runs


@pytest.mark.slow
def test_well_formed_tables_pass_every_suite(good_report: ValidationReport):
    names = [t.name for t in good_report.tables]
    assert names == [v.table for v in REGISTRY.views] + [
        clean_table(s.name) for s in event_sources()
    ]
    assert [(t.name, t.failures) for t in good_report.tables if not t.success] == []
    assert good_report.success
    assert good_report.table(table_name(FEATURES, "member_engagement")).rows == len(ENTITIES) * 6
    assert all(t.expectations >= 10 for t in good_report.tables)


def test_data_docs_are_written_for_every_validation(faulty_report: ValidationReport, data_dir):
    index = data_dir / "reports" / "data_docs" / "index.html"
    assert faulty_report.docs_index == index
    for result in faulty_report.tables:
        page = result.docs_page
        assert page is not None and page.is_file(), result.name
        assert page.relative_to(index.parent).as_posix() in index.read_text()


@pytest.mark.slow
def test_later_runs_keep_the_data_docs_of_earlier_ones(
    good_report: ValidationReport, faulty_report: ValidationReport
):
    listed = faulty_report.docs_index.read_text()
    for result in good_report.tables:
        page = result.docs_page
        assert page is not None and page.is_file(), result.name
        assert page.relative_to(faulty_report.docs_index.parent).as_posix() in listed


def test_faults_in_a_feature_table_are_each_named(faulty_report: ValidationReport):
    table = table_name(FEATURES, "member_engagement")
    result = faulty_report.table(table)
    assert not result.success
    assert f"{table}: member_id is never null" in descriptions(faulty_report, table, "member_id")
    assert f"{table}: (member_id, event_timestamp, created_timestamp) is unique" in descriptions(
        faulty_report, table, "member_id"
    )
    assert any(
        d.startswith(f"{table}: plays_count_1h >= 0")
        for d in descriptions(faulty_report, table, "plays_count_1h")
    )
    nesting = [
        f
        for f in result.failures_about("plays_count_1d")
        if "plays_count_1d <= plays_count_7d" in f.description
    ]
    assert len(nesting) == 1
    assert nesting[0].observed == "1 offending rows of 6 rows"
    assert nesting[0].examples[0]["member_id"] == "3"
    assert nesting[0].examples[0]["event_timestamp"] == "2031-01-02 10:00:00"
    duplicate = next(f for f in result.failures if "is unique" in f.description)
    assert duplicate.examples == (
        {
            "member_id": "1",
            "event_timestamp": "2031-01-02 09:00:00",
            "created_timestamp": "2031-01-02 09:00:00",
            "copies": "2",
        },
    )
    # Only the planted faults fail: every other rule still holds on this table.
    assert len(result.failures) == 5, [f.description for f in result.failures]


def test_row_count_collapse_and_stale_table_are_caught(faulty_report: ValidationReport):
    collapsed = faulty_report.table(table_name(FEATURES, "member_engagement"))
    volume = [f for f in collapsed.failures if f.expectation.startswith("expect_table_row_count")]
    assert [f.description for f in volume] == [
        f"{table_name(FEATURES, 'member_engagement')}: between 9 and 36 rows "
        "(0.5x to 2x the 18 rows of a day earlier)"
    ]
    assert volume[0].examples == ({"rows": "6"},)
    assert not [f for f in collapsed.failures if "latest" in f.description]  # still fresh

    stale = faulty_report.table(table_name(FEATURES, "title_popularity"))
    freshness = [f for f in stale.failures if "latest event_timestamp" in f.description]
    assert len(freshness) == 1
    assert freshness[0].examples[0]["latest_event_timestamp"] == "2031-01-02 07:00:00"


def test_bundled_row_rules_are_reported_one_by_one(faulty_report: ValidationReport):
    stale = faulty_report.table(table_name(FEATURES, "title_popularity"))
    bound = f"{stale.name}: title_viewers_approx_distinct_1d <= title_plays_count_1d"
    (viewers,) = [f for f in stale.failures if f.description.startswith(bound)]
    assert viewers.columns == ("title_viewers_approx_distinct_1d", "title_plays_count_1d")
    assert [e["title_id"] for e in viewers.examples] == ["2"]
    (watched,) = stale.failures_about("title_watch_seconds_sum_7d")
    assert "title_watch_seconds_sum_1d <= title_watch_seconds_sum_7d" in watched.description
    assert [e["title_id"] for e in watched.examples] == ["3"]


def test_faults_in_a_clean_table_are_caught(faulty_report: ValidationReport):
    clean = table_name(CLEAN, "playback_events")
    assert descriptions(faulty_report, clean, "member_id") == [f"{clean}: member_id is never null"]
    negative = faulty_report.table(clean).failures_about("watch_seconds")
    assert [f.description for f in negative] == [
        f"{clean}: watch_seconds >= 0.0 and watch_seconds <= 86400.0 (declared range)"
    ]
    assert negative[0].examples[0]["watch_seconds"] == "-5.0"
    assert len(faulty_report.table(clean).failures) == 2


def test_report_names_failing_tables_features_and_entities(faulty_report: ValidationReport):
    assert not faulty_report.success
    assert [t.name for t in faulty_report.failed] == [
        table_name(FEATURES, "member_engagement"),
        table_name(FEATURES, "title_popularity"),
        table_name(CLEAN, "playback_events"),
    ]
    text = faulty_report.render()
    engagement = table_name(FEATURES, "member_engagement")
    assert f"FAIL  {engagement}" in text
    assert f"x {engagement}: plays_count_1d <= plays_count_7d" in text
    assert "e.g. member_id=3 event_timestamp=2031-01-02 10:00:00" in text
    assert "FAILED: 3 of 3 tables" in text


def test_runner_validates_any_dataframe_with_a_suite_built_by_a_function(spark, data_dir):
    compared = spark.createDataFrame(
        [(1, 2.0, 2.0), (2, 3.0, 3.5), (3, None, 1.0)],
        "member_id long, online double, offline double",
    )

    def consistency_suite(df) -> list:
        return [
            ex.no_rows_where(
                "abs(online - offline) > 1e-6",
                description="consistency: online equals offline",
                show=["member_id", *df.columns[1:]],
                columns=["online", "offline"],
            ),
            ex.not_null("online", about="consistency", ident=["member_id"]),
        ]

    runner = QualityRunner(data_dir / "reports" / "data_docs", run_name="consistency")
    result = runner.validate_with("consistency.member", compared, consistency_suite)
    assert not result.success
    assert result.rows == 3
    assert [(f.description, f.observed) for f in result.failures] == [
        ("consistency: online equals offline", "1 offending rows of 3 rows"),
        ("consistency: online is never null", "1 offending rows of 3 rows"),
    ]
    assert result.failures[0].examples == ({"member_id": "2", "online": "3.0", "offline": "3.5"},)


def test_unknown_names_are_one_clear_error(spark):
    with pytest.raises(PlatformError, match="unknown feature view 'nope'"):
        validate(spark, start=GOOD.start, end=GOOD.end, views=["nope"])
    nope = table_name(CLEAN, "nope")
    with pytest.raises(PlatformError, match=rf"unknown clean event table '{re.escape(nope)}'"):
        validate(spark, start=GOOD.start, end=GOOD.end, tables=[nope])


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    yield CliRunner()


def test_cli_gate_exit_codes(cli, spark, tables, data_dir):
    from pipelines.cli import app

    args = ["validate", "--start", "2031-01-02T06:00", "--end", "2031-01-02T12:00"]
    # The attribute view ad_profile has a row without its key in this interval.
    failed = cli.invoke(app, [*args, "--views", "ad_profile"])
    assert failed.exit_code == 1, failed.output
    profile = REGISTRY.view("ad_profile").table
    assert f"FAIL  {profile}" in failed.output
    assert f"x {profile}: ad_id is never null" in failed.output
    assert f"data docs: {data_dir / 'reports' / 'data_docs' / 'index.html'}" in failed.output

    passed = cli.invoke(app, [*args, "--views", "title_profile"])
    assert passed.exit_code == 0, passed.output
    assert "PASSED: 1 tables" in passed.output

    unknown = cli.invoke(app, [*args, "--views", "nope"])
    assert unknown.exit_code == 2
    assert "error: unknown feature view 'nope'" in unknown.output
