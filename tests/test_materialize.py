"""Materialization to Redis: Feast's exact layout, latest-row semantics, ordering, TTL, failures.

Small feature tables for every view are written into `features.<view>` for a
far-future range (2031) and removed again when the module ends, so the feature
computation's own tests never see them.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pyspark.testing import assertDataFrameEqual

from features import REGISTRY, AnyView, AttributeView
from pipelines.config import FEATURE_REPO_DIR
from pipelines.delta_io import replace_where, table_exists
from pipelines.feature_tables import feature_table_schema
from pipelines.interval import Interval
from pipelines.redis_server import RedisServer, RedisUnavailableError, free_port, redis_client
from pipelines.serving.materialize import (
    MaterializeError,
    layout_for,
    learned_rows,
    materialize,
    oldest_servable_event,
)
from pipelines.serving.online import get_online_features
from pipelines.serving.store import feast_environment, feature_store

pytestmark = [
    pytest.mark.redis,
    # Feast warns that its Spark store API is experimental, on every use.
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

END = datetime(2031, 3, 4, tzinfo=UTC)
START = END - timedelta(days=3)
DATA_START = END - timedelta(days=10)
DATA_END = END + timedelta(days=2)
NEVER_MATERIALIZED = 424_242
# title_popularity has an 8-day TTL: one entity's only row is older than END - 8d.
TTL_VIEW = "title_popularity"
EXPIRED_ENTITY, FRESH_ENTITY = 501, 502


# --- test data -------------------------------------------------------------------------


def _value(rng: random.Random, value_type: str) -> Any:
    if rng.random() < 0.12:
        return None
    if value_type == "int64":
        return rng.choice([0, -3, 7, 2**40 + 1, -(2**62), rng.randint(-1000, 10**12)])
    if value_type == "float64":
        return rng.choice([0.0, -0.0, 1.5e-300, rng.uniform(-1e6, 1e6), float("nan")])
    if value_type == "string":
        return rng.choice(["", "tv", "mobile", "Zoë ▶ ok", "a,b=c"])
    if value_type == "date":
        return date(1960, 1, 1) + timedelta(days=rng.randint(0, 30000))
    raise AssertionError(value_type)


def _row(view: AnyView, rng: random.Random, key: int, hour: datetime, later: int = 0) -> tuple:
    """A version as compute writes it: windowed rows at whole hours, known at that hour or
    `later` hours after; attribute versions at their arrival, known at the end of its hour."""
    event = hour
    if isinstance(view, AttributeView):
        event = hour + timedelta(minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        later = 1
    created = hour + timedelta(hours=later)
    values = [_value(rng, f.value_type) for f in view.features]
    return (key, event, created, *values, event.date())


def make_rows(view: AnyView, seed: int) -> list[tuple]:
    """Versions around [START, END): before, inside (with late versions of a row), after."""
    rng = random.Random(seed)
    rows: list[tuple] = []
    for key in [1, 2, 3, 4, 5, 6, 7, 8, -5, 2**40 + 3]:
        hours = rng.sample(range(-24, 72), rng.randint(1, 4))
        for hour in hours:
            rows.append(_row(view, rng, key, START + timedelta(hours=hour), rng.choice([0, 0, 2])))
        if key == 3 and not isinstance(view, AttributeView):
            # A later version of the newest row: the later created one wins.
            rows.append(_row(view, rng, key, START + timedelta(hours=max(hours)), 3))
        if key in (4, 5):  # newer rows after END must not be materialized by [START, END)
            rows.append(_row(view, rng, key, END + timedelta(hours=rng.randint(1, 30))))
    if view.name == TTL_VIEW:
        rows.append(_row(view, rng, EXPIRED_ENTITY, END - timedelta(days=9)))
        rows.append(_row(view, rng, FRESH_ENTITY, END - timedelta(days=7)))
    return [r for r in rows if DATA_START <= r[1] < DATA_END]


def latest_expected(view: AnyView, rows: list[tuple], learned: Interval) -> dict[int, tuple]:
    """The oracle: per entity, of the versions created in `(start, end]` and not expired at
    `end`, the one with the greatest (event, created) time."""
    oldest = learned.end - view.effective_ttl if view.effective_ttl else None
    best: dict[int, tuple] = {}
    for row in rows:
        if not learned.start < row[2] <= learned.end or (oldest and row[1] < oldest):
            continue
        if row[0] not in best or (row[1], row[2]) > (best[row[0]][1], best[row[0]][2]):
            best[row[0]] = row
    return best


def assert_online_matches(
    view: AnyView, online: dict[str, list], keys: list, expected: dict
) -> None:
    for i, key in enumerate(keys):
        row = expected.get(key)
        for j, feature in enumerate(view.features):
            got = online[feature.name][i]
            want = None if row is None else row[3 + j]
            where = f"{view.name}.{feature.name} of {key}"
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got is None, where
            elif feature.value_type == "int64":
                assert type(got) is int and got == want, where
            elif feature.value_type == "float64":
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0), where
                assert math.copysign(1, got) == math.copysign(1, want), where
            elif feature.value_type == "date":
                assert got == datetime(want.year, want.month, want.day, tzinfo=UTC), where
            else:
                assert got == want, where


def read_view(view: AnyView, keys: list, **kwargs: Any) -> dict[str, list]:
    refs = [f"{view.name}:{f.name}" for f in view.features]
    return get_online_features(refs, [{view.entity.join_key: k} for k in keys], **kwargs)


def redis_contents(url: str) -> dict[bytes, dict[bytes, bytes]]:
    client = redis_client(url)
    try:
        return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_rows(spark) -> dict[str, list[tuple]]:
    created_here = [v.table for v in REGISTRY.views if not table_exists(spark, v.table)]
    rows = {view.name: make_rows(view, seed) for seed, view in enumerate(REGISTRY.views)}
    predicate = Interval.parse(DATA_START, DATA_END).sql("event_timestamp")
    for view in REGISTRY.views:
        # An existing table keeps its partitioning; one created here is dropped afterwards.
        df = spark.createDataFrame(rows[view.name], feature_table_schema(view))
        replace_where(df, view.table, predicate=predicate)
    yield rows
    for view in REGISTRY.views:
        if view.table in created_here:
            spark.sql(f"DROP TABLE IF EXISTS {view.table}")
        else:
            spark.sql(f"DELETE FROM {view.table} WHERE {predicate}")


@pytest.fixture(scope="module")
def feast_repo(redis_server, tmp_path_factory):
    """The Feast repo on a module-private registry, pointed at the test Redis, applied."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURE_PLATFORM_DATA_DIR", str(tmp_path_factory.mktemp("feast-data")))
        patch.setenv("REDIS_URL", redis_server.url)
        for name, value in feast_environment().items():
            patch.setenv(name, value)
        from pipelines.feast_repo import feast_objects

        feature_store().apply(list(feast_objects().values()))
        yield


@pytest.fixture(scope="module")
def materialized(spark, feature_rows, feast_repo, redis_server) -> tuple[str, dict]:
    """[START, END) of every view, materialized once into a database of its own (db 1)."""
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    redis_client(url).flushdb()
    report = materialize(spark, start=START, end=END, redis_url=url)
    assert all(v.written == v.rows and v.skipped_older == 0 for v in report.views)
    return url, redis_contents(url)


def restore(url: str, contents: dict[bytes, dict[bytes, bytes]]) -> None:
    client = redis_client(url)
    with client.pipeline(transaction=False) as pipe:
        for key, fields in contents.items():
            pipe.hset(key, mapping=fields)
        pipe.execute()


# --- the latest-row transform ------------------------------------------------------------


def test_learned_rows_are_the_newest_version_learned_in_the_interval(spark) -> None:
    view = REGISTRY.view("member_profile")
    t = datetime(2031, 1, 1, 10, tzinfo=UTC)
    rows = [
        (1, t, t + timedelta(hours=1), "NL", "basic", None, t.date()),
        (1, t + timedelta(minutes=30), t + timedelta(hours=1), "DE", "basic", None, t.date()),
        (1, t + timedelta(minutes=30), t + timedelta(hours=2), "FR", "plus", None, t.date()),
        (1, t + timedelta(hours=2), t + timedelta(hours=3), "XX", "late", None, t.date()),
        (2, t - timedelta(hours=1), t, "BE", "basic", None, t.date()),  # known at the start
        (3, t, t + timedelta(hours=1), "US", None, date(2020, 1, 1), t.date()),
    ]
    df = spark.createDataFrame(rows, feature_table_schema(view))
    got = learned_rows(df, view, Interval(t, t + timedelta(hours=2)))
    expected = spark.createDataFrame(
        [
            (1, t + timedelta(minutes=30), t + timedelta(hours=2), "FR", "plus", None),
            (3, t, t + timedelta(hours=1), "US", None, date(2020, 1, 1)),
        ],
        "member_id long, event_timestamp timestamp, created_timestamp timestamp, "
        "country string, plan string, signup_date date",
    )
    assertDataFrameEqual(got, expected)


def test_rows_older_than_the_ttl_at_the_end_are_not_served() -> None:
    interval = Interval(END - timedelta(days=30), END)
    view = REGISTRY.view(TTL_VIEW)
    assert oldest_servable_event(view, interval) == END - timedelta(days=8)
    assert oldest_servable_event(REGISTRY.view("member_profile"), interval) is None


# --- materialization --------------------------------------------------------------------


@pytest.mark.slow
def test_online_values_equal_latest_offline_rows(feature_rows, materialized) -> None:
    url, _ = materialized
    window = Interval(START, END)
    for view in REGISTRY.views:
        expected = latest_expected(view, feature_rows[view.name], window)
        keys = [*sorted(expected), NEVER_MATERIALIZED]
        online = read_view(view, keys, redis_url=url)
        assert online[view.entity.join_key] == keys
        assert_online_matches(view, online, keys, expected)


@pytest.mark.slow
def test_service_reads_across_views(feature_rows, materialized) -> None:
    window = Interval(START, END)
    ads = latest_expected(REGISTRY.view("ad_profile"), feature_rows["ad_profile"], window)
    members = latest_expected(
        REGISTRY.view("member_profile"), feature_rows["member_profile"], window
    )
    member, ad = sorted(members)[0], sorted(ads)[-1]
    online = get_online_features(
        "ctr_model", [{"member_id": member, "ad_id": ad}], redis_url=materialized[0]
    )
    assert list(online)[:2] == ["ad_id", "member_id"]
    assert online["country"] == [members[member][3]]
    assert online["advertiser"] == [ads[ad][4]]
    resolved = REGISTRY.resolve("ctr_model")
    assert list(online)[2:] == [name for names in resolved.values() for name in names]


@pytest.mark.slow
def test_rerun_is_idempotent_and_older_interval_never_overwrites(
    spark, feature_rows, materialized, redis_url
) -> None:
    _, after_first = materialized
    restore(redis_url, after_first)
    names = ["member_engagement", "member_profile"]  # every value type, two hashes' worth
    again = materialize(spark, start=START, end=END, views=names)
    assert redis_contents(redis_url) == after_first
    assert all(v.skipped_older == 0 and v.written == v.rows for v in again.views)

    older = Interval(START - timedelta(days=1), START)
    report = materialize(spark, start=older.start, end=older.end, views=names)
    for view_report in report.views:
        rows = feature_rows[view_report.view]
        view = REGISTRY.view(view_report.view)
        newer = latest_expected(view, rows, Interval(START, END))
        in_older = latest_expected(view, rows, older)
        # Newer wins by (event time, version): an older hour's row only fills gaps.
        kept = {k for k, row in in_older.items() if k in newer and newer[k][1:3] > row[1:3]}
        assert view_report.skipped_older == len(kept) > 0
        assert view_report.written == len(in_older) - len(kept)
        both = {**in_older, **{k: r for k, r in newer.items() if k not in in_older or k in kept}}
        keys = sorted(both)
        assert_online_matches(view, read_view(view, keys), keys, both)


@pytest.mark.slow
def test_newer_interval_after_older_one_wins(spark, feature_rows, feast_repo, redis_url) -> None:
    view = REGISTRY.view("ad_profile")
    materialize(spark, start=START, end=END, views=[view.name])
    materialize(spark, start=END, end=DATA_END, views=[view.name])
    expected = latest_expected(view, feature_rows[view.name], Interval(START, DATA_END))
    keys = sorted(expected)
    assert_online_matches(view, read_view(view, keys), keys, expected)


@pytest.mark.slow
def test_ttl_rows_expired_at_end_are_not_written_and_reads_can_hide_stale_ones(
    spark, feature_rows, feast_repo, redis_url
) -> None:
    view = REGISTRY.view(TTL_VIEW)
    learned = Interval(END - timedelta(days=10), END)
    report = materialize(spark, start=learned.start, end=learned.end, views=[TTL_VIEW])
    assert report.views[0].oldest_event == END - view.effective_ttl
    online = read_view(view, [EXPIRED_ENTITY, FRESH_ENTITY])
    assert all(online[f.name][0] is None for f in view.features), "expired row was written"
    fresh = latest_expected(view, feature_rows[TTL_VIEW], learned)
    assert_online_matches(view, online, [EXPIRED_ENTITY, FRESH_ENTITY], fresh)
    # Read as of two days later, the fresh entity's 7-day-old row is past the 8-day TTL.
    later = read_view(view, [FRESH_ENTITY], as_of=END + timedelta(days=2))
    assert all(later[f.name][0] is None for f in view.features)
    now = read_view(view, [FRESH_ENTITY], as_of=END)
    assert_online_matches(view, now, [FRESH_ENTITY], fresh)


@pytest.mark.slow
def test_same_bytes_as_feasts_own_writer(
    spark, feature_rows, feast_repo, materialized, redis_url
) -> None:
    """Feast's own online write path, given the rows the platform chose, stores the same
    bytes; the platform adds only its `_created:<view>` fields."""
    _, ours = materialized
    store = feature_store()
    for view in REGISTRY.views:
        chosen = learned_rows(spark.table(view.table), view, Interval(START, END)).toPandas()
        for column in ("event_timestamp", "created_timestamp"):
            chosen[column] = chosen[column].dt.tz_localize("UTC")
        store.write_to_online_store(view.name, chosen)
    feasts = redis_contents(redis_url)
    assert set(ours) == set(feasts)
    created = {f"_created:{v.name}".encode() for v in REGISTRY.views}
    # Feast writes a null date as the sentinel -2**63; the platform writes null.
    sentinel = b"\x40" + b"\x80" * 9 + b"\x01"
    differences = [
        (key, field)
        for key, fields in feasts.items()
        for field, value in fields.items()
        if ours[key].get(field) != value and not (value == sentinel and ours[key].get(field) == b"")
    ]
    assert differences == []
    assert all(set(ours[key]) - created == set(fields) for key, fields in feasts.items())
    assert all(set(ours[key]) & created for key in ours)
    assert any(v == sentinel for fields in feasts.values() for v in fields.values())


@pytest.mark.slow
def test_feast_materialize_incremental_continues_after_the_platform(
    spark, feature_rows, feast_repo, redis_url
) -> None:
    from click.testing import CliRunner
    from feast.cli.cli import cli as feast_cli

    view = REGISTRY.view("member_profile")
    report = materialize(spark, start=START, end=END, views=[view.name])
    assert report.feast_registry_updated
    result = CliRunner().invoke(
        feast_cli,
        [
            "-c",
            str(FEATURE_REPO_DIR),
            "materialize-incremental",
            DATA_END.isoformat(),
            "--views",
            view.name,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    # Feast continues from END: the newest row by event time of [END, DATA_END) replaces
    # the platform's value when its event time is later.
    ours = latest_expected(view, feature_rows[view.name], Interval(START, END))
    expected = dict(ours)
    for row in feature_rows[view.name]:
        if END <= row[1] < DATA_END and (row[0] not in expected or row[1] > expected[row[0]][1]):
            expected[row[0]] = row
    assert expected != ours
    keys = sorted(expected)
    assert_online_matches(view, read_view(view, keys), keys, expected)


# --- failures and the CLI ----------------------------------------------------------------


def test_unreachable_redis_fails_before_any_spark_work(spark) -> None:
    began = time.monotonic()
    with pytest.raises(RedisUnavailableError, match="cannot reach Redis"):
        materialize(spark, start=START, end=END, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert time.monotonic() - began < 5


@pytest.mark.slow
def test_a_write_failing_midway_is_an_error_not_a_success(
    spark, feature_rows, feast_repo, tmp_path
) -> None:
    with RedisServer(tmp_path / "small") as server:
        client = redis_client(server.url)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used + 20_000))
        client.config_set("maxmemory-policy", "noeviction")
        with pytest.raises(MaterializeError, match=r"OOM|maxmemory"):
            materialize(
                spark,
                start=DATA_START,
                end=DATA_END,
                views=["member_engagement"],
                redis_url=server.url,
            )


@pytest.mark.slow
def test_cli_materialize_and_errors(spark, feature_rows, feast_repo, redis_url) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "materialize",
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--views",
            "ad_profile",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "ad_profile" in ok.output and "written" in ok.output

    unknown = runner.invoke(
        app, ["materialize", "--start", "2031-01-01", "--end", "2031-01-02", "--views", "nope"]
    )
    assert unknown.exit_code == 2
    assert "unknown feature view 'nope'" in unknown.output

    down = runner.invoke(
        app,
        ["materialize", "--start", "2031-01-01", "--end", "2031-01-02"],
        env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    assert down.exit_code == 2
    assert "error: cannot reach Redis" in down.output


def test_layout_matches_feast_for_every_declared_view() -> None:
    from feast.infra.online_stores.helpers import _mmh3

    for view in REGISTRY.views:
        layout = layout_for(view, "streaming_ads")
        assert layout.ts_field == f"_ts:{view.name}".encode()
        assert list(layout.field_hashes) == [_mmh3(f"{view.name}:{f.name}") for f in view.features]


# --- the encoders and the writer, without Spark -------------------------------------------


def test_encoders_match_feasts_own_serialization_byte_for_byte() -> None:
    import pyarrow as pa
    from feast import Entity, FeatureView, Field, ValueType
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float64, Int64, String, UnixTimestamp
    from feast.utils import _convert_arrow_to_proto
    from google.protobuf.timestamp_pb2 import Timestamp

    from pipelines.feast_repo import feast_source
    from pipelines.serving import encoding

    n = 9
    times = [
        datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2262, 4, 11, tzinfo=UTC),
        datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        *[datetime(2031, 1, 1, tzinfo=UTC) + timedelta(seconds=7**k) for k in range(4)],
    ]
    batch = pa.table(
        {
            "member_id": pa.array(
                [0, 1, -1, 2**63 - 1, -(2**63), 127, 128, 300, 2**40], pa.int64()
            ),
            # Feast converts an int64 column with nulls through float64, so beyond 2**53
            # it is not exact; extreme values are checked against protobuf below.
            "i": pa.array([0, 1, -1, 2**53, -(2**53), 127, 128, 2**35, None], pa.int64()),
            "d": pa.array(
                [0.0, -0.0, 1.5, -2.25e-308, 1e308, float("inf"), float("nan"), 3.3, None]
            ),
            "s": pa.array(["", "a", "Zoë ▶", "x" * 200, "a,b", "\n", "é" * 70, "z", None]),
            "dt": pa.array(
                [date(2031, 1, 2), date(1960, 1, 1), date(1970, 1, 1), date(9999, 12, 31)]
                + [date(2000, 2, 29)] * 5,
                pa.date32(),
            ),
            "ts": pa.array(times, pa.timestamp("us", "UTC")),
            "event_timestamp": pa.array(times, pa.timestamp("us", "UTC")),
            "created_timestamp": pa.array(times, pa.timestamp("us", "UTC")),
        }
    )
    entity = Entity(name="member", join_keys=["member_id"], value_type=ValueType.INT64)
    types = {"i": Int64, "d": Float64, "s": String, "dt": UnixTimestamp, "ts": UnixTimestamp}
    view = FeatureView(
        name="codec",
        entities=[entity],
        ttl=timedelta(0),
        source=feast_source(REGISTRY.view("member_profile")),
        schema=[Field(name="member_id", dtype=Int64)]
        + [Field(name=k, dtype=v) for k, v in types.items()],
    )
    feast_rows = _convert_arrow_to_proto(batch, view, {"member_id": ValueType.INT64})
    assert len(feast_rows) == n
    value_types = {"i": "int64", "d": "float64", "s": "string", "dt": "date", "ts": "timestamp"}
    for column, value_type in value_types.items():
        ours = encoding.encode_values(batch.column(column), value_type).to_pylist()
        theirs = [values[column].SerializeToString() for _, values, _, _ in feast_rows]
        assert ours == theirs, column
    extremes = [2**63 - 1, -(2**63), 2**62 + 1, -(2**53) - 1]
    assert encoding.encode_values(pa.array(extremes, pa.int64()), "int64").to_pylist() == [
        Value(int64_val=v).SerializeToString() for v in extremes
    ]
    layout = encoding.view_layout("streaming_ads", "codec", "member_id", "int64", [("i", "int64")])
    keys = encoding.encode_entity_keys(layout, batch.column("member_id")).to_pylist()
    assert keys == [_redis_key("streaming_ads", key, 3) for key, _, _, _ in feast_rows]
    stamps = encoding.encode_event_timestamps(batch.column("event_timestamp")).to_pylist()
    expected_stamps = []
    for _, _, when, _ in feast_rows:
        proto = Timestamp()
        proto.FromDatetime(when)
        expected_stamps.append(proto.SerializeToString())
    assert stamps == expected_stamps
    assert [encoding.timestamp_micros_from_proto(s) for s in stamps] == [
        int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) for t in times
    ]


def test_string_entity_keys_match_feast() -> None:
    import pyarrow as pa
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from pipelines.serving import encoding

    layout = encoding.view_layout("p", "v", "title_code", "string", [("f", "int64")])
    values = ["abc", "", "Zoë", "x" * 300]
    ours = encoding.encode_entity_keys(layout, pa.array(values)).to_pylist()
    theirs = [
        _redis_key("p", EntityKey(join_keys=["title_code"], entity_values=[Value(string_val=v)]), 3)
        for v in values
    ]
    assert ours == theirs


def test_writer_compares_with_timestamps_written_by_feast(feast_repo, redis_url) -> None:
    import pandas as pd
    import pyarrow as pa

    from pipelines.serving.redis_writer import write_table

    view = REGISTRY.view("member_profile")
    layout = layout_for(view, "streaming_ads")
    t = datetime(2031, 6, 1, tzinfo=UTC)
    feature_store().write_to_online_store(
        view.name,
        pd.DataFrame(
            {
                "member_id": [1, 2],
                "event_timestamp": [t, t],
                "created_timestamp": [t, t],
                "country": ["feast-1", "feast-2"],
                "plan": ["p", "p"],
                "signup_date": [pd.NaT, pd.NaT],
            }
        ),
    )

    def table(when: datetime, country: str) -> pa.Table:
        times = pa.array([when, when + timedelta(hours=1)], pa.timestamp("us", "UTC"))
        return pa.table(
            {
                "member_id": pa.array([1, 2], pa.int64()),
                "event_timestamp": times,
                "created_timestamp": times,
                "country": [country, country],
                "plan": ["q", "q"],
                "signup_date": pa.array([None, None], pa.date32()),
            }
        )

    # Entity 1 at t - 1h is older than Feast's value; entity 2 at t is equal: rewritten.
    assert write_table(redis_url, layout, table(t - timedelta(hours=1), "ours")) == (1, 1)
    got = read_view(view, [1, 2])
    assert got["country"] == ["feast-1", "ours"]
    assert write_table(redis_url, layout, table(t + timedelta(hours=5), "newest")) == (2, 0)
    assert read_view(view, [1, 2])["country"] == ["newest", "newest"]


def test_pipelined_chunks_keep_newer_values_and_count_each_row(redis_url) -> None:
    import pyarrow as pa

    from pipelines.serving import encoding
    from pipelines.serving.redis_writer import write_table

    layout = encoding.view_layout("chunks", "v", "member_id", "int64", [("n", "int64")])
    t = datetime(2031, 7, 1, tzinfo=UTC)

    def table(keys: list[int], hours: list[int], versions: list[int] | None = None) -> pa.Table:
        versions = versions or [0] * len(keys)
        return pa.table(
            {
                "member_id": pa.array(keys, pa.int64()),
                "event_timestamp": pa.array(
                    [t + timedelta(hours=h) for h in hours], pa.timestamp("us", "UTC")
                ),
                "created_timestamp": pa.array(
                    [t + timedelta(hours=h + v) for h, v in zip(hours, versions, strict=True)],
                    pa.timestamp("us", "UTC"),
                ),
                "n": pa.array(
                    [100 * k + h + 1000 * v for k, h, v in zip(keys, hours, versions, strict=True)],
                    pa.int64(),
                ),
            }
        )

    keys = list(range(1, 12))
    # Chunks of 3 rows: 4 chunks, the last one short.
    assert write_table(redis_url, layout, table(keys, [5] * 11), chunk_rows=3) == (11, 0)
    # Odd keys older than stored (kept), even keys newer (written): every chunk mixes both.
    hours = [1 if k % 2 else 9 for k in keys]
    assert write_table(redis_url, layout, table(keys, hours), chunk_rows=3) == (5, 6)
    client = redis_client(redis_url)
    redis_keys = encoding.encode_entity_keys(layout, pa.array(keys, pa.int64())).to_pylist()
    stored = [client.hget(key, layout.field_hashes[0]) for key in redis_keys]
    expected = encoding.encode_values(
        pa.array([100 * k + (5 if k % 2 else 9) for k in keys], pa.int64()), "int64"
    ).to_pylist()
    assert stored == expected
    # Versions of the stored rows: a later one replaces it, an earlier one never does.
    stored_hours = [5 if k % 2 else 9 for k in keys]
    versions = [3 if k % 3 == 0 else 0 for k in keys]
    assert write_table(redis_url, layout, table(keys, stored_hours, versions), 3) == (11, 0)
    older = [2 if k % 3 == 0 else 0 for k in keys]  # earlier than 3, same as 0
    assert write_table(redis_url, layout, table(keys, stored_hours, older), 3) == (8, 3)
    stored = [client.hget(key, layout.field_hashes[0]) for key in redis_keys]
    expected = encoding.encode_values(
        pa.array(
            [100 * k + h + 1000 * v for k, h, v in zip(keys, stored_hours, versions, strict=True)],
            pa.int64(),
        ),
        "int64",
    ).to_pylist()
    assert stored == expected
    client.close()
