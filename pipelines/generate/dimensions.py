"""The three dimension tables of the world, as Arrow tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.generate.world import AD_CATEGORIES, COUNTRIES, GENRES, PLANS, World


def label_array(labels: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Category labels from their positions in `labels`."""
    return pc.take(pa.array(labels, type=pa.string()), pa.array(index, type=pa.int64()))


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("datetime64[D]").astype(np.int32), type=pa.date32())


def _constant_time(epoch_us: int, n: int) -> pa.Array:
    return pa.array(np.full(n, epoch_us, dtype=np.int64), type=pa.timestamp("us", tz="UTC"))


def dimension_tables(world: World, epoch_us: int) -> dict[str, pa.Table]:
    """members, titles and ads; every row is stamped as ingested at `epoch_us`."""
    advertisers = pc.binary_join_element_wise(
        pa.scalar("advertiser_"),
        pc.utf8_lpad(pc.cast(pa.array(world.ad_advertiser, type=pa.int64()), pa.string()), 3, "0"),
        "",
    )
    return {
        "members": pa.table(
            {
                "member_id": pa.array(world.member_id, type=pa.int64()),
                "country": label_array(COUNTRIES, world.member_country),
                "plan": label_array(PLANS, world.member_plan),
                "signup_date": _dates(world.member_signup),
                "ingestion_timestamp": _constant_time(epoch_us, world.members),
            }
        ),
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
