"""Online retrieval through Feast's FeatureStore: values, nulls, TTL as of a time, errors, CLI.

Values are written with the platform's Redis writer from in-memory Arrow tables
(the code the Spark executors run), so these tests need Redis and Feast, not Spark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from platform_helpers import feast_repo_applied, write_rows

from features import REGISTRY
from pipelines.redis_server import RedisUnavailableError, free_port
from pipelines.serving.online import (
    OnlineLookupError,
    get_online_features,
    get_online_features_df,
)

pytestmark = [
    pytest.mark.redis,
    # Feast warns that its Spark store API is experimental, on every use.
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

T = datetime(2031, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def applied_repo(redis_server, tmp_path_factory):
    with feast_repo_applied(redis_server.url, tmp_path_factory.mktemp("online-data")):
        yield


def test_values_come_back_exactly(applied_repo, redis_url) -> None:
    write_rows(
        redis_url,
        "member_profile",
        [
            {
                "member_id": 7,
                "event_timestamp": T,
                "country": "NL",
                "plan": "Zoë",
                "signup_date": date(2019, 2, 3),
            }
        ],
    )
    write_rows(
        redis_url,
        "ad_profile",
        [
            {
                "ad_id": -2,
                "event_timestamp": T,
                "campaign_id": 2**62 + 1,
                "bid_cpm": 0.1 + 0.2,
                "category": "",
            }
        ],
    )
    got = get_online_features(
        [
            "member_profile:country",
            "member_profile:plan",
            "member_profile:signup_date",
            "ad_profile:campaign_id",
            "ad_profile:bid_cpm",
            "ad_profile:category",
            "ad_profile:advertiser",
        ],
        [{"member_id": 7, "ad_id": -2}],
    )
    assert got == {
        "ad_id": [-2],
        "member_id": [7],
        "country": ["NL"],
        "plan": ["Zoë"],
        "signup_date": [datetime(2019, 2, 3, tzinfo=UTC)],
        "campaign_id": [2**62 + 1],
        "bid_cpm": [0.1 + 0.2],
        "category": [""],
        "advertiser": [None],
    }


def test_unknown_entities_are_null_not_errors(applied_repo, redis_url) -> None:
    write_rows(
        redis_url, "member_profile", [{"member_id": 1, "event_timestamp": T, "country": "BE"}]
    )
    frame = get_online_features_df(
        ["member_profile:country", "member_profile:plan"],
        [{"member_id": 1}, {"member_id": 99}, {"member_id": 1}],
    )
    assert frame["member_id"].tolist() == [1, 99, 1]
    assert frame["country"].tolist() == ["BE", None, "BE"]
    assert frame["plan"].isna().all()


def test_a_service_returns_its_features_in_declared_order(applied_repo, redis_url) -> None:
    got = get_online_features("engagement_model", [{"member_id": 3, "title_id": 4}])
    resolved = REGISTRY.resolve("engagement_model")
    assert list(got) == ["member_id", "title_id"] + [n for ns in resolved.values() for n in ns]
    assert all(
        values == [None] for name, values in got.items() if name not in ("member_id", "title_id")
    )


def test_as_of_hides_values_older_than_the_view_ttl(applied_repo, redis_url) -> None:
    view = REGISTRY.view("member_engagement")
    ttl = view.effective_ttl
    write_rows(redis_url, view.name, [{"member_id": 5, "event_timestamp": T, "plays_count_1d": 4}])
    write_rows(
        redis_url, "member_profile", [{"member_id": 5, "event_timestamp": T, "plan": "basic"}]
    )
    refs = ["member_engagement:plays_count_1d", "member_profile:plan"]
    rows = [{"member_id": 5}]
    assert get_online_features(refs, rows)["plays_count_1d"] == [4]  # no as_of: as stored
    assert get_online_features(refs, rows, as_of=T + ttl)["plays_count_1d"] == [4]
    stale = get_online_features(refs, rows, as_of=T + ttl + timedelta(seconds=1))
    assert stale["plays_count_1d"] == [None]
    assert stale["plan"] == ["basic"], "attribute views have no TTL"


def test_errors_name_the_problem(applied_repo, redis_url) -> None:
    with pytest.raises(OnlineLookupError, match="lacks ad_id"):
        get_online_features("ctr_model", [{"member_id": 1}])
    with pytest.raises(OnlineLookupError, match="unknown feature service 'nope'"):
        get_online_features("nope", [{"member_id": 1}])
    with pytest.raises(OnlineLookupError, match="view member_profile has no 'age'"):
        get_online_features(["member_profile:age"], [{"member_id": 1}])


def test_unreachable_redis_is_a_fast_clear_error(applied_repo) -> None:
    began = time.monotonic()
    with pytest.raises(RedisUnavailableError, match="cannot reach Redis"):
        get_online_features(
            "ctr_model",
            [{"member_id": 1, "ad_id": 2}],
            redis_url=f"redis://127.0.0.1:{free_port()}/0",
        )
    assert time.monotonic() - began < 5


def test_cli_prints_values(applied_repo, redis_url) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    write_rows(
        redis_url, "member_profile", [{"member_id": 1, "event_timestamp": T, "country": "NL"}]
    )
    runner = CliRunner()
    read = ["online", "--service", "ctr_model", "--entity", "member_id=1", "--entity", "ad_id=2"]
    printed = {}
    for path in ([], ["--through-feast"]):
        result = runner.invoke(app, [*read, *path])
        assert result.exit_code == 0, result.output
        printed[tuple(path)] = result.output
        lines = dict(line.split(maxsplit=1) for line in result.output.strip().splitlines())
        assert lines["country"] == "NL"
        assert lines["ad_id"] == "2"
        assert lines["ad_clicks_count_7d"] == "None"
    assert printed[()] == printed[("--through-feast",)]

    bad = runner.invoke(app, ["online", "--service", "ctr_model", "--entity", "member_id=x"])
    assert bad.exit_code == 2
    assert "member_id is an integer" in bad.output


def test_cli_online_read_starts_no_jvm_and_imports_no_feast(applied_repo, redis_url) -> None:
    write_rows(
        redis_url, "member_profile", [{"member_id": 3, "event_timestamp": T, "country": "PT"}]
    )
    # No java on PATH and no JAVA_HOME: a command that launched a JVM would fail.
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "PYSPARK_SUBMIT_ARGS")}
    env["PATH"] = os.path.dirname(sys.executable)
    read = ["online", "--service", "ctr_model", "--entity", "member_id=3", "--entity", "ad_id=2"]
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipelines.cli", *read],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(maxsplit=1) for line in result.stdout.strip().splitlines())
    assert lines["country"] == "PT" and lines["member_id"] == "3"
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "pipelines.serving.direct" in imported  # the check below sees real imports
    assert not sorted(m for m in imported if m.split(".")[0] == "feast")
    print(f"feature-platform online, one entity: {took:.2f} s")


def test_direct_reader_returns_what_feast_returns(applied_repo, redis_url) -> None:
    from pipelines.serving.direct import OnlineReader

    old = T - REGISTRY.view("member_engagement").effective_ttl - timedelta(hours=1)
    write_rows(
        redis_url,
        "member_engagement",
        [
            {"member_id": 11, "event_timestamp": T, "plays_count_1d": 3, "plays_count_7d": 9},
            {"member_id": 12, "event_timestamp": old, "plays_count_7d": 1},
        ],
    )
    write_rows(
        redis_url,
        "member_profile",
        [{"member_id": 11, "event_timestamp": T, "country": "DE", "signup_date": date(2020, 1, 2)}],
    )
    write_rows(
        redis_url,
        "ad_profile",
        [{"ad_id": 21, "event_timestamp": old, "bid_cpm": 2.5, "category": "games"}],
    )
    rows = [
        {"member_id": 11, "ad_id": 21},
        {"member_id": 12, "ad_id": 22},
        {"member_id": 404, "ad_id": 21},
        {"member_id": 11, "ad_id": 21},
    ]
    for features in (
        "ctr_model",
        ["member_profile:signup_date", "member_engagement:plays_count_7d", "ad_profile:bid_cpm"],
    ):
        with OnlineReader(features, redis_url=redis_url) as reader:
            for as_of in (None, T, T + timedelta(days=2)):
                expected = get_online_features(features, rows, as_of=as_of)
                got = reader.get(rows, as_of=as_of)
                assert list(got) == list(expected)
                assert got == expected, (features, as_of)
    with OnlineReader("ctr_model", redis_url=redis_url) as reader:
        got = reader.get(rows, as_of=T + timedelta(days=2))
    assert got["plays_count_1d"] == [3, None, None, 3]
    assert got["country"] == ["DE", None, None, "DE"]
    assert got["bid_cpm"] == [2.5, None, 2.5, 2.5], "ad_profile is an attribute view: no TTL"


def test_direct_reader_errors_name_the_problem(applied_repo, redis_url) -> None:
    from pipelines.serving.direct import OnlineReader

    with OnlineReader("ctr_model", redis_url=redis_url) as reader:
        with pytest.raises(OnlineLookupError, match="entity row 0 lacks ad_id"):
            reader.get([{"member_id": 1}])
        with pytest.raises(OnlineLookupError, match="member_id must be an integer"):
            reader.get([{"member_id": "x", "ad_id": 1}])
    with pytest.raises(OnlineLookupError, match="unknown feature service 'nope'"):
        OnlineReader("nope", redis_url=redis_url)
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    with (
        OnlineReader("ctr_model", redis_url=unreachable) as reader,
        pytest.raises(RedisUnavailableError, match="cannot read from Redis"),
    ):
        reader.get([{"member_id": 1, "ad_id": 2}])


@pytest.mark.parametrize(
    ("value_type", "field", "values"),
    [
        ("int64", "int64_val", [0, 1, 127, 128, 2**62 + 1, 2**63 - 1, -1, -(2**63)]),
        ("float64", "double_val", [0.0, -0.0, 0.1 + 0.2, -1e308, float("inf")]),
        ("string", "string_val", ["", "NL", "Zoë", "x" * 200, "日本" * 100]),
        ("date", "unix_timestamp_val", [0, 1_700_000_000, -86_400, -(2**63)]),
    ],
)
def test_direct_wire_readers_agree_with_protobuf(value_type, field, values) -> None:
    from feast.protos.feast.types.Value_pb2 import Value

    from pipelines.serving.direct import _READERS, _decode_value

    read = _READERS[value_type]
    for value in values:
        data = Value(**{field: value}).SerializeToString()
        assert read(data) == _decode_value(data), (value_type, value)
    # Another field than the type's own (as another writer might use) still decodes.
    other = Value(int32_val=5).SerializeToString()
    assert read(other) == 5
    assert read(b"") is None and read(None) is None
