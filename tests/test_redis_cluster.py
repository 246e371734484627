"""The online store on a real Redis Cluster (three local primaries): the platform's writer
routes every key to the node owning its slot, and `OnlineReader` and Feast
(`redis_type: redis_cluster`) read back the same values as from a single server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from platform_helpers import feast_repo_applied, write_rows

from features import REGISTRY
from pipelines.redis_server import (
    RedisUnavailableError,
    check_redis,
    feast_connection_string,
    free_port,
    redis_client,
    running_redis_cluster,
)
from pipelines.serving.direct import OnlineReader
from pipelines.serving.materialize import layout_for
from pipelines.serving.online import get_online_features
from pipelines.serving.redis_writer import write_table
from pipelines.serving.store import repo_settings

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:The spark:RuntimeWarning"),
]

T = datetime(2031, 5, 1, 12, tzinfo=UTC)
MEMBERS = range(1, 301)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    with running_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(scope="module")
def cluster_repo(cluster_url, tmp_path_factory):
    with feast_repo_applied(cluster_url, tmp_path_factory.mktemp("cluster-data")):
        yield cluster_url


def _node_sizes(url: str) -> list[int]:
    client = redis_client(url)
    try:
        return [client.get_redis_connection(node).dbsize() for node in client.get_primaries()]
    finally:
        client.close()


def test_values_are_spread_over_the_nodes_and_read_back_as_from_one_server(cluster_repo) -> None:
    url = cluster_repo
    old = T - REGISTRY.view("member_engagement").effective_ttl - timedelta(hours=1)
    engagement = [
        {
            "member_id": m,
            "event_timestamp": T if m % 2 else old,
            "plays_count_1d": m,
            "plays_count_7d": 2 * m,
        }
        for m in MEMBERS
    ]
    write_rows(url, "member_engagement", engagement)
    write_rows(
        url,
        "member_profile",
        [{"member_id": m, "event_timestamp": T, "country": f"c{m % 7}"} for m in MEMBERS],
    )
    write_rows(url, "ad_profile", [{"ad_id": 21, "event_timestamp": old, "bid_cpm": 2.5}])

    sizes = _node_sizes(url)
    assert len(sizes) == 3 and min(sizes) > 0, sizes  # every node owns some entities
    assert sum(sizes) == len(MEMBERS) + 1  # one hash per entity: 300 members and 1 ad

    rows = [{"member_id": m, "ad_id": 21} for m in (*MEMBERS, 404)]
    with OnlineReader("ctr_model", redis_url=url) as reader:
        for as_of in (None, T + timedelta(days=2)):
            got = reader.get(rows, as_of=as_of)
            assert got == get_online_features("ctr_model", rows, as_of=as_of), as_of
    assert got["plays_count_7d"][:4] == [2, None, 6, None]  # even members: older than the TTL
    assert got["country"][:3] == ["c1", "c2", "c3"] and got["country"][-1] is None
    assert got["bid_cpm"] == [2.5] * len(rows)


def test_older_rows_do_not_replace_newer_ones_on_the_cluster(cluster_repo) -> None:
    url = cluster_repo
    view = REGISTRY.view("member_profile")
    layout = layout_for(view, repo_settings().project)

    def table(when: datetime, country: str) -> pa.Table:
        members = list(MEMBERS)
        return pa.table(
            {
                "member_id": pa.array(members, pa.int64()),
                "event_timestamp": pa.array([when] * len(members), pa.timestamp("us", "UTC")),
                "created_timestamp": pa.array([when] * len(members), pa.timestamp("us", "UTC")),
                **{
                    f.name: pa.array([country if f.name == "country" else None] * len(members))
                    if f.value_type == "string"
                    else pa.nulls(len(members), pa.date32())
                    for f in view.features
                },
            }
        )

    assert write_table(url, layout, table(T + timedelta(days=1), "new")) == (len(MEMBERS), 0)
    assert write_table(url, layout, table(T, "old")) == (0, len(MEMBERS))
    got = get_online_features(["member_profile:country"], [{"member_id": m} for m in MEMBERS])
    assert set(got["country"]) == {"new"}


def test_a_cluster_url_without_a_cluster_is_a_clear_error() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    with pytest.raises(RedisUnavailableError, match=r"127\.0\.0\.1"):
        check_redis(url)
    assert feast_connection_string(url).startswith(f"127.0.0.1:{url.rsplit(':', 1)[1]},")
    assert "db=" not in feast_connection_string(url)
