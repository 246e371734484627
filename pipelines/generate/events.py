"""Event streams of one day, vectorized with numpy and handed out as Arrow tables.

A day's stream holds the events whose (true) event time falls on that day,
drawn from a random generator seeded by `(seed, day, stream)`: a day looks the
same whichever interval asks for it. Times are integer microseconds since the
Unix epoch (UTC) until they become Arrow timestamps.

Each row may carry a fault (the quarantine reason it should get, `kind:column`): a
null key, a negative duration, an event time in the future, a click on an unknown
impression, or a second delivery of a valid row. At `hostile_share`, rows that a
broken producer writes are added as well: NaN, infinite and absurd values, a null or
1970 event time, a null or 1970 ingestion time, an unknown category, a redelivery
with its event time moved days back; and some valid rows get a wrong `event_date`
(ingest derives it, so they stay clean). The `fault` column is for tests; the raw
tables do not have it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources import DEVICES, PLACEMENTS
from pipelines.generate.dimensions import label_array
from pipelines.generate.world import (
    DEVICE_SHARES,
    IMPRESSIONS_PER_DAY,
    PLACEMENT_SHARES,
    PLAYBACKS_PER_DAY,
    SHIFTED_DEVICE_SHARES,
    WATCH_TIME_FACTOR,
    GeneratorConfig,
    World,
    click_logit,
)
from pipelines.interval import Interval

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
UNIX_EPOCH = date(1970, 1, 1)

PLAYBACK_STREAM, IMPRESSION_STREAM, CLICK_STREAM, SHIFT_STREAM = 1, 2, 3, 4

# Normal arrival: a couple of seconds plus an exponential tail, capped at ten minutes.
ARRIVAL_MIN_US = 2 * US_PER_SECOND
ARRIVAL_MEAN_EXTRA_US = 40 * US_PER_SECOND
ARRIVAL_CAP_US = 10 * US_PER_MINUTE
LATE_RANGE_US = (1 * US_PER_HOUR, 12 * US_PER_HOUR)
FUTURE_SHIFT_US = (1 * US_PER_HOUR, 48 * US_PER_HOUR)
REDELIVERY_RANGE_US = (1 * US_PER_MINUTE, 6 * US_PER_HOUR)
CLICK_DELAY_RANGE_US = (2 * US_PER_SECOND, 20 * US_PER_MINUTE)
# A device that uploads an impression late uploads its click with it, not before.
CLICK_AFTER_IMPRESSION_US = (1 * US_PER_SECOND, 30 * US_PER_SECOND)
# A day's events arrive before the end of the next day (late + redelivery + click
# delay < 24 h), so a run over [start, end) needs the streams from start's day - 1.
LOOKBACK_DAYS = 1

ID_DIGITS = 7
WEEKEND_FACTOR = 1.15
ABANDON_SHARE = 0.2
USUAL_DEVICE_SHARE = 0.75
MAX_WATCH_SECONDS = 6 * 3600.0

_HOUR_OF_MINUTE = (np.arange(24 * 60) + 0.5) / 60.0
# Viewing peaks in the evening (about 20:30 UTC) with a smaller midday bump; the
# quietest hours see roughly a tenth of the peak.
_DIURNAL = (
    1.0
    + 0.7 * np.cos(2 * np.pi * (_HOUR_OF_MINUTE - 20.5) / 24)
    + 0.15 * np.cos(4 * np.pi * (_HOUR_OF_MINUTE - 13.0) / 24)
)
DIURNAL_MINUTE_P = _DIURNAL / _DIURNAL.sum()

NO_FAULT = ""
# Faults name the generator's own columns (seq, event_us, ingest_us, category) until
# `_to_arrow` gives them the table's names.
NULL_ONE_KEY = "null"  # completed with the column that was nulled
NEGATIVE = "out_of_range:watch_seconds"
FUTURE = "future:event_us"
ORPHAN = "orphan:seq"
DUPLICATE = "duplicate:seq"
TABLE_FAULTS: dict[str, tuple[str, ...]] = {
    "playback_events": (NULL_ONE_KEY, NEGATIVE, FUTURE),
    "ad_impressions": (NULL_ONE_KEY, FUTURE),
    "ad_clicks": (NULL_ONE_KEY, FUTURE, ORPHAN),
}
EVENT_TABLES = tuple(TABLE_FAULTS)


class Hostile(StrEnum):
    """Rows a broken producer writes: copies of valid rows (same id), broken one way."""

    NAN = "nan"
    INFINITE = "infinite"
    ABSURD = "absurd"
    UNKNOWN_CATEGORY = "unknown_category"
    NULL_EVENT_TIME = "null_event_time"
    NULL_INGESTION_TIME = "null_ingestion_time"
    ANCIENT_EVENT = "ancient_event"
    ANCIENT_INGESTION = "ancient_ingestion"
    MOVED_REDELIVERY = "moved_redelivery"


HOSTILE_FAULT = {
    Hostile.NAN: "not_finite:watch_seconds",
    Hostile.INFINITE: "not_finite:watch_seconds",
    Hostile.ABSURD: "out_of_range:watch_seconds",
    Hostile.UNKNOWN_CATEGORY: "not_allowed:category",
    Hostile.NULL_EVENT_TIME: "null:event_us",
    Hostile.NULL_INGESTION_TIME: "null:ingest_us",
    Hostile.ANCIENT_EVENT: "out_of_range:event_us",
    Hostile.ANCIENT_INGESTION: "out_of_range:ingest_us",
    Hostile.MOVED_REDELIVERY: DUPLICATE,
}
_ANY_SOURCE_HOSTILE = (
    Hostile.NULL_EVENT_TIME,
    Hostile.NULL_INGESTION_TIME,
    Hostile.ANCIENT_EVENT,
    Hostile.ANCIENT_INGESTION,
    Hostile.MOVED_REDELIVERY,
)
HOSTILE_KINDS: dict[str, tuple[Hostile, ...]] = {
    "playback_events": (
        Hostile.NAN,
        Hostile.INFINITE,
        Hostile.ABSURD,
        Hostile.UNKNOWN_CATEGORY,
        *_ANY_SOURCE_HOSTILE,
    ),
    "ad_impressions": (Hostile.UNKNOWN_CATEGORY, *_ANY_SOURCE_HOSTILE),
    "ad_clicks": _ANY_SOURCE_HOSTILE,
}
CATEGORY_COLUMN = {"playback_events": "device", "ad_impressions": "placement"}
UNKNOWN_LABEL = "unknown_label"
ABSURD_WATCH_SECONDS = 1e30
# A 1970 timestamp: what a zeroed or mis-scaled clock reads as.
ANCIENT_RANGE_US = (0, 365 * US_PER_DAY - 1)
MOVED_BACK_RANGE_US = (1 * US_PER_DAY, 20 * US_PER_DAY)
REDELIVERED_AFTER_US = (1 * US_PER_HOUR, 12 * US_PER_HOUR)
WRONG_DATE_DAYS = (1, 30)
HOSTILE_STREAM_OFFSET = 200


@dataclass
class _Rows:
    """Aligned numpy columns of one table; `nulls` marks missing values per column."""

    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    fault: np.ndarray  # object array of reason strings, NO_FAULT when clean

    def __len__(self) -> int:
        return len(self.fault)

    def take(self, rows: np.ndarray) -> _Rows:
        return _Rows(
            {k: v[rows] for k, v in self.columns.items()},
            {k: v[rows] for k, v in self.nulls.items()},
            self.fault[rows],
        )

    def append(self, other: _Rows) -> _Rows:
        return _Rows(
            {k: np.concatenate([v, other.columns[k]]) for k, v in self.columns.items()},
            {k: np.concatenate([v, other.nulls[k]]) for k, v in self.nulls.items()},
            np.concatenate([self.fault, other.fault]),
        )


def day_ordinal_us(day: date) -> int:
    return (day - UNIX_EPOCH).days * US_PER_DAY


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, exactly (no float rounding)."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _rng(config: GeneratorConfig, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, day.toordinal(), stream]))


def _daily_count(rng: np.random.Generator, per_day: float, day: date, scale: float) -> int:
    factor = WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
    return int(rng.poisson(per_day * scale * factor))


def _event_times(rng: np.random.Generator, day: date, n: int) -> np.ndarray:
    minutes = rng.choice(len(DIURNAL_MINUTE_P), n, p=DIURNAL_MINUTE_P)
    millis = rng.integers(0, 60_000, n)
    return np.sort(day_ordinal_us(day) + minutes * US_PER_MINUTE + millis * 1000)


def _uniform_us(rng: np.random.Generator, bounds: tuple[int, int], n: int) -> np.ndarray:
    return rng.integers(bounds[0], bounds[1], n, endpoint=True)


def _arrival_delays(rng: np.random.Generator, n: int, late_share: float) -> np.ndarray:
    # Every draw happens whatever the shares are, so changing one knob leaves the
    # other random choices of the day as they were.
    normal = np.minimum(
        ARRIVAL_MIN_US + rng.exponential(ARRIVAL_MEAN_EXTRA_US, n).astype(np.int64),
        ARRIVAL_CAP_US,
    )
    late = _uniform_us(rng, LATE_RANGE_US, n)
    return np.where(rng.random(n) < late_share, late, normal)


def _draw_faults(
    rng: np.random.Generator, n: int, share: float, kinds: tuple[str, ...]
) -> np.ndarray:
    chosen = np.asarray(kinds, dtype=object)[rng.integers(0, len(kinds), n)]
    return np.where(rng.random(n) < share, chosen, NO_FAULT).astype(object)


def _null_one_of(rng: np.random.Generator, rows: _Rows, keys: tuple[str, ...]) -> None:
    """Null one of `keys` in the rows drawn to have a null key; the fault names it."""
    faulty = rows.fault == NULL_ONE_KEY
    which = rng.integers(0, len(keys), len(rows))
    for position, key in enumerate(keys):
        nulled = faulty & (which == position)
        rows.nulls[key] = rows.nulls[key] | nulled
        rows.fault = np.where(nulled, f"null:{key}", rows.fault).astype(object)


def _shift_into_future(rng: np.random.Generator, rows: _Rows, faulty: np.ndarray) -> None:
    """A device clock far ahead: the event time lands hours after the row's arrival."""
    shift = _uniform_us(rng, FUTURE_SHIFT_US, len(rows))
    rows.columns["event_us"] = np.where(
        faulty, rows.columns["ingest_us"] + shift, rows.columns["event_us"]
    )


def _with_redeliveries(rng: np.random.Generator, rows: _Rows, share: float) -> _Rows:
    """Append second deliveries of some valid rows, arriving a bit later."""
    n = len(rows)
    again = (rng.random(n) < share) & (rows.fault == NO_FAULT)
    extra = _uniform_us(rng, REDELIVERY_RANGE_US, n)
    copies = rows.take(np.flatnonzero(again))
    copies.columns["ingest_us"] = copies.columns["ingest_us"] + extra[again]
    copies.fault = np.full(len(copies), DUPLICATE, dtype=object)
    return rows.append(copies)


def _no_nulls(n: int, *names: str) -> dict[str, np.ndarray]:
    return {name: np.zeros(n, dtype=bool) for name in names}


def _with_hostile(
    config: GeneratorConfig, day: date, stream: int, table: str, rows: _Rows
) -> _Rows:
    """Append hostile copies of valid rows and give some valid rows a wrong `event_date`.

    From a random stream of its own: the other rows of the day stay as they were
    whatever `hostile_share` is. A copy keeps its row's id and arrival unless its kind
    moves them; a moved redelivery arrives hours after its row, before the end of the
    next day (see LOOKBACK_DAYS).
    """
    rng = _rng(config, day, stream + HOSTILE_STREAM_OFFSET)
    n, share = len(rows), config.hostile_share
    kinds = HOSTILE_KINDS[table]
    picked = rng.random(n) < share
    which = np.asarray(kinds, dtype=object)[rng.integers(0, len(kinds), n)]
    ancient = _uniform_us(rng, ANCIENT_RANGE_US, n)
    moved_back = _uniform_us(rng, MOVED_BACK_RANGE_US, n)
    later = _uniform_us(rng, REDELIVERED_AFTER_US, n)
    sign = rng.choice(np.array([-1, 1]), n)
    wrong_days = rng.integers(WRONG_DATE_DAYS[0], WRONG_DATE_DAYS[1], n, endpoint=True)
    lies_about_date = rng.random(n) < share

    valid = rows.fault == NO_FAULT
    event_us, ingest_us = rows.columns["event_us"], rows.columns["ingest_us"]
    rows.columns["shown_ingest_us"] = ingest_us.copy()
    true_day = event_us // US_PER_DAY
    rows.columns["shown_day"] = np.where(
        lies_about_date & valid, true_day + sign * wrong_days, true_day
    )
    rows.nulls.setdefault("event_us", np.zeros(n, dtype=bool))
    rows.nulls.setdefault("ingest_us", np.zeros(n, dtype=bool))

    chosen = np.flatnonzero(picked & valid)
    copies = rows.take(chosen)
    kind = which[chosen]
    c = copies.columns
    if "watch_seconds" in c:
        c["watch_seconds"] = np.where(kind == Hostile.NAN, np.nan, c["watch_seconds"])
        c["watch_seconds"] = np.where(
            kind == Hostile.INFINITE, sign[chosen] * np.inf, c["watch_seconds"]
        )
        c["watch_seconds"] = np.where(
            kind == Hostile.ABSURD, ABSURD_WATCH_SECONDS, c["watch_seconds"]
        )
    if table in CATEGORY_COLUMN:
        column = CATEGORY_COLUMN[table]
        c[column] = np.where(kind == Hostile.UNKNOWN_CATEGORY, -1, c[column])
    copies.nulls["event_us"] = kind == Hostile.NULL_EVENT_TIME
    copies.nulls["ingest_us"] = kind == Hostile.NULL_INGESTION_TIME
    c["event_us"] = np.where(kind == Hostile.ANCIENT_EVENT, ancient[chosen], c["event_us"])
    moved = kind == Hostile.MOVED_REDELIVERY
    c["event_us"] = np.where(moved, c["event_us"] - moved_back[chosen], c["event_us"])
    last_arrival = (day - UNIX_EPOCH).days * US_PER_DAY + (LOOKBACK_DAYS + 1) * US_PER_DAY - 1
    redelivered = np.minimum(c["ingest_us"] + later[chosen], last_arrival)
    c["ingest_us"] = np.where(moved, redelivered, c["ingest_us"])
    c["shown_ingest_us"] = np.where(
        kind == Hostile.ANCIENT_INGESTION, ancient[chosen], c["ingest_us"]
    )
    c["shown_day"] = c["event_us"] // US_PER_DAY
    copies.fault = np.asarray([HOSTILE_FAULT[Hostile(k)] for k in kind], dtype=object)
    # A redelivery that cannot arrive after its row any more is not a redelivery.
    keep = ~moved | (c["ingest_us"] > rows.columns["ingest_us"][chosen])
    return rows.append(copies.take(np.flatnonzero(keep)))


def playback_rows(world: World, config: GeneratorConfig, day: date) -> _Rows:
    rng = _rng(config, day, PLAYBACK_STREAM)
    n = _daily_count(rng, PLAYBACKS_PER_DAY, day, config.scale)
    event_us = _event_times(rng, day, n)
    members = rng.choice(world.members, n, p=world.member_play_p)
    titles = rng.choice(world.titles, n, p=world.title_play_p)
    other_device = rng.choice(len(DEVICES), n, p=DEVICE_SHARES)
    device = np.where(
        rng.random(n) < USUAL_DEVICE_SHARE, world.member_device[members], other_device
    )
    # Sessions are either quick abandons or long-tailed viewing (median ~25 min).
    abandoned = 1.0 + rng.exponential(45.0, n)
    viewed = np.exp(rng.normal(math.log(1500.0), 0.8, n))
    watch = np.where(rng.random(n) < ABANDON_SHARE, abandoned, viewed)
    watch = np.round(np.clip(watch, 1.0, MAX_WATCH_SECONDS), 1)
    ingest_us = event_us + _arrival_delays(rng, n, config.late_share)
    device, watch = _shifted(config, day, event_us, device, watch)

    rows = _Rows(
        {
            "seq": np.arange(1, n + 1),
            "member_id": world.member_id[members],
            "title_id": world.title_id[titles],
            "device": device,
            "event_us": event_us,
            "watch_seconds": watch,
            "ingest_us": ingest_us,
        },
        _no_nulls(n, "seq", "member_id", "title_id"),
        _draw_faults(rng, n, config.malformed_share, TABLE_FAULTS["playback_events"]),
    )
    _null_one_of(rng, rows, ("seq", "member_id", "title_id"))
    negative = rows.fault == NEGATIVE
    rows.columns["watch_seconds"] = np.where(negative, -watch, watch)
    _shift_into_future(rng, rows, rows.fault == FUTURE)
    rows = _with_redeliveries(rng, rows, config.duplicate_share)
    return _with_hostile(config, day, PLAYBACK_STREAM, "playback_events", rows)


def _shifted(
    config: GeneratorConfig,
    day: date,
    event_us: np.ndarray,
    device: np.ndarray,
    watch: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Plays at or after `shift_from`, moved by the configured shift. Its draws come from
    a stream of their own, so every other column is what an unshifted run generates."""
    if config.shift is None or config.shift_from is None:
        return device, watch
    after = event_us >= to_us(config.shift_from)
    if config.shift == "device_mix":
        rng = _rng(config, day, SHIFT_STREAM)
        moved = rng.choice(len(DEVICES), len(device), p=SHIFTED_DEVICE_SHARES)
        return np.where(after, moved, device), watch
    longer = np.round(np.clip(watch * WATCH_TIME_FACTOR, 1.0, MAX_WATCH_SECONDS), 1)
    return device, np.where(after, longer, watch)


@dataclass
class _ImpressionDay:
    rows: _Rows
    members: np.ndarray  # positions into the world, for the click model
    ads: np.ndarray
    placements: np.ndarray


def _impression_day(world: World, config: GeneratorConfig, day: date) -> _ImpressionDay:
    rng = _rng(config, day, IMPRESSION_STREAM)
    n = _daily_count(rng, IMPRESSIONS_PER_DAY, day, config.scale)
    event_us = _event_times(rng, day, n)
    members = rng.choice(world.members, n, p=world.member_ad_p)
    ads = rng.choice(world.ads, n, p=world.ad_serve_p)
    placements = rng.choice(len(PLACEMENTS), n, p=PLACEMENT_SHARES)
    ingest_us = event_us + _arrival_delays(rng, n, config.late_share)
    rows = _Rows(
        {
            "seq": np.arange(1, n + 1),
            "member_id": world.member_id[members],
            "ad_id": world.ad_id[ads],
            "placement": placements,
            "event_us": event_us,
            "ingest_us": ingest_us,
        },
        _no_nulls(n, "seq", "member_id", "ad_id"),
        _draw_faults(rng, n, config.malformed_share, TABLE_FAULTS["ad_impressions"]),
    )
    _null_one_of(rng, rows, ("seq", "member_id", "ad_id"))
    _shift_into_future(rng, rows, rows.fault == FUTURE)
    return _ImpressionDay(rows, members, ads, placements)


def impression_rows(world: World, config: GeneratorConfig, day: date) -> _Rows:
    impressions = _impression_day(world, config, day)
    rng = _rng(config, day, IMPRESSION_STREAM + 100)
    rows = _with_redeliveries(rng, impressions.rows, config.duplicate_share)
    return _with_hostile(config, day, IMPRESSION_STREAM, "ad_impressions", rows)


def click_rows(world: World, config: GeneratorConfig, day: date) -> _Rows:
    """Clicks on the day's valid impressions; the click may fall on the next day."""
    impressions = _impression_day(world, config, day)
    shown = impressions.rows
    rng = _rng(config, day, CLICK_STREAM)
    n_shown = len(shown)
    click_p = 1.0 / (
        1.0
        + np.exp(-click_logit(world, impressions.members, impressions.ads, impressions.placements))
    )
    clicked = np.flatnonzero((rng.random(n_shown) < click_p) & (shown.fault == NO_FAULT))
    n = len(clicked)
    # Most clicks come within seconds; a long tail reaches twenty minutes.
    delay_s = np.exp(rng.normal(math.log(20.0), 1.3, n))
    delay_us = np.clip((delay_s * US_PER_SECOND).astype(np.int64), *CLICK_DELAY_RANGE_US)
    event_us = shown.columns["event_us"][clicked] + delay_us
    own_arrival = event_us + _arrival_delays(rng, n, config.late_share)
    with_impression = shown.columns["ingest_us"][clicked] + _uniform_us(
        rng, CLICK_AFTER_IMPRESSION_US, n
    )
    rows = _Rows(
        {
            "seq": shown.columns["seq"][clicked],
            "event_us": event_us,
            "ingest_us": np.maximum(own_arrival, with_impression),
        },
        _no_nulls(n, "seq"),
        _draw_faults(rng, n, config.malformed_share, TABLE_FAULTS["ad_clicks"]),
    )
    _null_one_of(rng, rows, ("seq",))
    _shift_into_future(rng, rows, rows.fault == FUTURE)
    # Ids past the day's last impression match nothing.
    orphan = rows.fault == ORPHAN
    rows.columns["seq"] = np.where(orphan, n_shown + np.cumsum(orphan), rows.columns["seq"])
    rows = _with_redeliveries(rng, rows, config.duplicate_share)
    return _with_hostile(config, day, CLICK_STREAM, "ad_clicks", rows)


ROW_BUILDERS = {
    "playback_events": playback_rows,
    "ad_impressions": impression_rows,
    "ad_clicks": click_rows,
}
ID_PREFIXES = {"playback_events": "pb", "ad_impressions": "imp", "ad_clicks": "imp"}


def _ids(prefix: str, seq: np.ndarray, missing: np.ndarray) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(seq, type=pa.int64()), pa.string()), ID_DIGITS, "0")
    ids = pc.binary_join_element_wise(pa.scalar(prefix), digits, "")
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), ids)


def _timestamps(us: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=missing)


def _dates(days: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=missing)


def _longs(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64), type=pa.int64(), mask=missing)


def _categories(labels: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Labels by position; position -1 is a label outside the declared set."""
    return label_array((*labels, UNKNOWN_LABEL), np.where(index < 0, len(labels), index))


def _fault_labels(table: str, key: str, fault: np.ndarray) -> pa.Array:
    """Faults with the table's column names instead of the generator's."""
    names = {"seq": key, "event_us": "event_timestamp", "ingest_us": "ingestion_timestamp"}
    names["category"] = CATEGORY_COLUMN.get(table, "category")

    def named(text: str) -> str:
        if ":" not in text:
            return text
        kind, column = text.split(":", 1)
        return f"{kind}:{names.get(column, column)}"

    return pa.array([named(str(f)) for f in fault], type=pa.string())


def _to_arrow(table: str, day: date, rows: _Rows, with_fault: bool) -> pa.Table:
    c, nulls = rows.columns, rows.nulls
    prefix = f"{ID_PREFIXES[table]}-{day:%Y%m%d}-"
    key = "event_id" if table == "playback_events" else "impression_id"
    arrays: dict[str, pa.Array] = {key: _ids(prefix, c["seq"], nulls["seq"])}
    if table == "playback_events":
        arrays["member_id"] = _longs(c["member_id"], nulls["member_id"])
        arrays["title_id"] = _longs(c["title_id"], nulls["title_id"])
        arrays["device"] = _categories(DEVICES, c["device"])
    elif table == "ad_impressions":
        arrays["member_id"] = _longs(c["member_id"], nulls["member_id"])
        arrays["ad_id"] = _longs(c["ad_id"], nulls["ad_id"])
        arrays["placement"] = _categories(PLACEMENTS, c["placement"])
    arrays["event_timestamp"] = _timestamps(c["event_us"], nulls["event_us"])
    if table == "playback_events":
        arrays["watch_seconds"] = pa.array(c["watch_seconds"], type=pa.float64())
    arrays["ingestion_timestamp"] = _timestamps(c["shown_ingest_us"], nulls["ingest_us"])
    # A producer that lost the event time lost its date as well.
    arrays["event_date"] = _dates(c["shown_day"], nulls["event_us"])
    if with_fault:
        arrays["fault"] = _fault_labels(table, key, rows.fault)
    return pa.table(arrays)


def day_events(
    world: World, config: GeneratorConfig, day: date, *, with_fault: bool = False
) -> dict[str, pa.Table]:
    """Everything that happens on `day`, whenever it arrives."""
    return {
        table: _to_arrow(table, day, build(world, config, day), with_fault)
        for table, build in ROW_BUILDERS.items()
    }


def stream_days(interval: Interval) -> Iterator[date]:
    """The days whose streams can have rows arriving within `interval`."""
    day = interval.start.date() - timedelta(days=LOOKBACK_DAYS)
    last = (interval.end - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def arrived_events(
    world: World, config: GeneratorConfig, interval: Interval, *, with_fault: bool = False
) -> dict[str, pa.Table]:
    """The event rows whose ingestion time lies in `interval`: what the raw tables receive."""
    start_us, end_us = to_us(interval.start), to_us(interval.end)
    parts: dict[str, list[pa.Table]] = {table: [] for table in ROW_BUILDERS}
    for day in stream_days(interval):
        for table, build in ROW_BUILDERS.items():
            rows = build(world, config, day)
            arrived = (rows.columns["ingest_us"] >= start_us) & (rows.columns["ingest_us"] < end_us)
            parts[table].append(
                _to_arrow(table, day, rows.take(np.flatnonzero(arrived)), with_fault)
            )
    return {table: pa.concat_tables(tables) for table, tables in parts.items()}
