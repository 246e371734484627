"""The three dimension tables of the world, as Arrow tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources import PLANS
from pipelines.generate.world import AD_CATEGORIES, COUNTRIES, GENRES, GeneratorConfig, World

CONFLICT_STREAM = 300


def label_array(labels: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Category labels from their positions in `labels`."""
    return pc.take(pa.array(labels, type=pa.string()), pa.array(index, type=pa.int64()))


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("datetime64[D]").astype(np.int32), type=pa.date32())


def _constant_time(epoch_us: int, n: int) -> pa.Array:
    return pa.array(np.full(n, epoch_us, dtype=np.int64), type=pa.timestamp("us", tz="UTC"))


def conflicting_members(world: World, config: GeneratorConfig) -> np.ndarray:
    """Positions of the members that get a conflicting second row."""
    if config.hostile_share == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, CONFLICT_STREAM]))
    count = max(1, round(config.hostile_share * world.members))
    return np.sort(rng.choice(world.members, count, replace=False))


def _conflicting(members: pa.Table, world: World, config: GeneratorConfig) -> pa.Table:
    rows = conflicting_members(world, config)
    other_plan = (world.member_plan[rows] + 1) % len(PLANS)
    return members.take(pa.array(rows)).set_column(
        members.schema.get_field_index("plan"), "plan", label_array(PLANS, other_plan)
    )


def dimension_tables(world: World, config: GeneratorConfig, epoch_us: int) -> dict[str, pa.Table]:
    """members, titles and ads; every row is stamped as ingested at `epoch_us`.

    At `hostile_share` of the members (at least one when it is not 0), a second row with
    the same key and time but another plan conflicts with the first.
    """
    advertisers = pc.binary_join_element_wise(
        pa.scalar("advertiser_"),
        pc.utf8_lpad(pc.cast(pa.array(world.ad_advertiser, type=pa.int64()), pa.string()), 3, "0"),
        "",
    )
    members = pa.table(
        {
            "member_id": pa.array(world.member_id, type=pa.int64()),
            "country": label_array(COUNTRIES, world.member_country),
            "plan": label_array(PLANS, world.member_plan),
            "signup_date": _dates(world.member_signup),
            "ingestion_timestamp": _constant_time(epoch_us, world.members),
        }
    )
    return {
        "members": pa.concat_tables([members, _conflicting(members, world, config)]),
        "titles": pa.table(
            {
                "title_id": pa.array(world.title_id, type=pa.int64()),
                "genre": label_array(GENRES, world.title_genre),
                "release_date": _dates(world.title_release),
                "ingestion_timestamp": _constant_time(epoch_us, world.titles),
            }
        ),
        "ads": pa.table(
            {
                "ad_id": pa.array(world.ad_id, type=pa.int64()),
                "campaign_id": pa.array(world.ad_campaign, type=pa.int64()),
                "advertiser": advertisers,
                "category": label_array(AD_CATEGORIES, world.ad_category),
                "bid_cpm": pa.array(world.ad_bid_cpm, type=pa.float64()),
                "ingestion_timestamp": _constant_time(epoch_us, world.ads),
            }
        ),
    }
