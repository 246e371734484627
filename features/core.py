"""The declaration language: entities, sources, windowed aggregations, feature views, services.

Everything here is inert data. Nothing imports Spark, touches storage or reads the
clock; `pipelines/` turns these objects into Spark jobs, Feast objects and checks.

Semantics of a windowed feature view (stated once, implemented by
`pipelines.compute`, checked by the oracle tests): the row for entity `e` with
`event_timestamp = T` (a whole hour) holds, for every aggregation over window
`w`, the aggregate of `e`'s events whose event time lies in `[T - w, T)`. The
table holds a row at every hour at which any value of the entity changes, i.e.
one hour after an event's hour (the event enters the window) and `w` later (it
leaves), so the latest row at or before time `t` is the exact value as of
`floor_hour(t)`. Aggregations skip null values (COUNT without a column counts
events); empty windows give 0 for counts, sums and distinct counts and null
for avg, min, max and last.

The tables are bitemporal: `created_timestamp` K is the end of the hour in which a
version of the row became knowable (the events it aggregates arrived before K). A row
is first written as known at its own hour (K = T); an event that arrives later adds a
version, with a later K, of every row it changes (see `pipelines.compute.job`).

Serving: the hourly pipeline publishes the versions known at K to the online store at
K + `serving_lag` (a view's declared lag), never earlier; a training set built "as
served" uses exactly those versions at each label time.

Real-time views (`FeatureView.realtime`) also have *sawtooth* values, as in Chronon:
the value at any instant `t` aggregates the window's events from its hour-aligned tail
up to `t` exactly, i.e. the events with event time in `[floor_hour(t) - w, t)` that had
arrived before `t`. It is the row at `T = floor_hour(t)` as known at `T` merged with
the *head*: the events that arrived in `[T, t)`, and those that arrived before `T`
with an event time at or after `T` (a clock ahead), each counted in the windows its
event time lies in. Windows therefore grow by the minute and drop their oldest hour
at each hour boundary. Compute keeps the mergeable aggregates of these views' rows in
`state.<view>` for that merge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from features.catalog import CLEAN, FEATURES, STATE, table_name, topic_name
from features.errors import DeclarationError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_WINDOW_PATTERN = re.compile(r"^(\d+)([hd])$")

# Value types shared by sources, features and Feast's type system.
VALUE_TYPES = ("int64", "float64", "string", "date", "timestamp")
_NUMERIC = ("int64", "float64")
# How long after the end of an hour the hourly pipeline publishes what it learned in that
# hour to the online store: room for ingest, compute, validation and materialization.
DEFAULT_SERVING_LAG = timedelta(minutes=15)
# How late events of a source may arrive and still be waited for (e.g. by label jobs).
DEFAULT_MAX_LATENESS = timedelta(hours=12)
# How far an event time may lie after its arrival (device clocks run ahead).
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
# No event happened, and no row arrived, before this: earlier times are broken clocks
# (a zero timestamp reads as 1970).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DeclarationError(
            f"invalid {kind} name {name!r}: use lower_snake_case (letters, digits, underscores)"
        )
    return name


@dataclass(frozen=True, order=True)
class Window:
    """A window length in whole hours, written like `1h`, `1d`, `7d`, `28d`."""

    hours: int

    def __post_init__(self) -> None:
        if not isinstance(self.hours, int) or self.hours <= 0:
            raise DeclarationError(
                f"window must be a positive whole number of hours: {self.hours!r}"
            )

    @classmethod
    def parse(cls, text: str | Window) -> Window:
        if isinstance(text, Window):
            return text
        match = _WINDOW_PATTERN.match(str(text).strip())
        if not match:
            raise DeclarationError(
                f"invalid window {text!r}: windows are whole hours, written like 1h, 6h, 1d, 7d"
            )
        amount, unit = int(match.group(1)), match.group(2)
        return cls(amount * 24 if unit == "d" else amount)

    @property
    def label(self) -> str:
        return f"{self.hours // 24}d" if self.hours % 24 == 0 else f"{self.hours}h"

    @property
    def duration(self) -> timedelta:
        return timedelta(hours=self.hours)

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Entity:
    """What features describe; `join_key` is the column that identifies it everywhere."""

    name: str
    join_key: str
    value_type: str = "int64"
    description: str = ""

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        check_name("join key", self.join_key)
        if self.value_type not in ("int64", "string"):
            raise DeclarationError(f"entity {self.name}: join key type must be int64 or string")


@dataclass(frozen=True)
class Range:
    """The plausible values of a numeric column, bounds included (None: unbounded)."""

    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        for bound in (self.low, self.high):
            if bound is not None and (not isinstance(bound, int | float) or bound != bound):
                raise DeclarationError(f"range bounds must be numbers, got {bound!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise DeclarationError(f"empty range [{self.low}, {self.high}]")


@dataclass(frozen=True)
class Validity:
    """What a valid raw row of a source is. Ingest quarantines every row that breaks it
    (the reason names the column); compute skips rows it cannot aggregate (see
    `pipelines.validity.UNUSABLE`) if they reach a clean table some other way.

    Beyond what is declared here, every float64 value must be finite, and the event and
    ingestion times must be present and not before `earliest`.
    """

    required: tuple[str, ...] = ()  # columns that may not be null
    ranges: dict[str, Range] = field(default_factory=dict)
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # closed categories
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW
    earliest: datetime = EARLIEST_TIMESTAMP

    def check(self, source: str, columns: dict[str, str]) -> None:
        for column in [*self.required, *self.ranges, *self.allowed]:
            if column not in columns:
                raise DeclarationError(f"source {source}: validity names unknown column {column!r}")
        for column in self.ranges:
            if columns[column] not in _NUMERIC:
                raise DeclarationError(f"source {source}: range on non-numeric column {column}")
        for column, values in self.allowed.items():
            if columns[column] != "string" or not values:
                raise DeclarationError(
                    f"source {source}: allowed values need a string column and at least one value"
                    f" ({column})"
                )
        if self.clock_skew < timedelta(0):
            raise DeclarationError(f"source {source}: clock_skew must not be negative")
        if self.earliest.tzinfo is None:
            raise DeclarationError(f"source {source}: earliest must be timezone-aware (UTC)")


def _check_columns(source: str, columns: dict[str, str]) -> None:
    check_name("source", source)
    for column, value_type in columns.items():
        check_name(f"column of source {source}", column)
        if value_type not in VALUE_TYPES:
            raise DeclarationError(
                f"source {source}: column {column} has unknown type {value_type!r}"
            )


@dataclass(frozen=True)
class Carried:
    """Columns that a source's raw rows lack: ingest copies them from the accepted row of
    event source `source` with the same `on` value, and a raw row without one is an
    orphan. (A click carries its impression's member and ad.)"""

    source: str
    on: str
    columns: tuple[str, ...]


class _SourceTable:
    """What event and dimension sources share: typed columns, and the clean table ingest
    writes."""

    name: str
    columns: dict[str, str]

    def column_type(self, column: str) -> str:
        if column not in self.columns:
            raise DeclarationError(f"source {self.name} has no column {column!r}")
        return self.columns[column]

    @property
    def table(self) -> str:
        """The clean table ingest writes."""
        return table_name(CLEAN, self.name)


@dataclass(frozen=True)
class IdDay:
    """Where a source's ids carry the day they were made (a time-ordered id, such as
    `pb-20261105-000042`): the first group of `pattern` is a date in `date_format`
    (Spark's datetime pattern). Ingest files each accepted id under that day, so that
    finding duplicates reads the index of the days a batch's ids name, not all of it.
    The day is a function of the id alone, so every delivery of an id looks in the same
    place: an id without a day, or with one before its source's `Validity.earliest` or a
    century after it, is filed under no day, which every batch with such ids reads.
    """

    pattern: str
    date_format: str = "yyyyMMdd"

    def __post_init__(self) -> None:
        try:
            groups = re.compile(self.pattern).groups
        except re.error as error:
            raise DeclarationError(f"id day pattern {self.pattern!r}: {error}") from error
        if groups < 1:
            raise DeclarationError(f"id day pattern {self.pattern!r} has no group for the day")


@dataclass(frozen=True)
class EventSource(_SourceTable):
    """A clean event table: append-only facts with an event time and an arrival time."""

    name: str
    columns: dict[str, str]
    timestamp_column: str = "event_timestamp"
    ingestion_column: str = "ingestion_timestamp"
    description: str = ""
    # Events may arrive later than this; it only says how long consumers that need an
    # interval to be complete (label jobs) wait for it.
    max_lateness: timedelta = DEFAULT_MAX_LATENESS
    # The column that identifies an event: a second row with an accepted id is a
    # duplicate, whatever its other fields say.
    id_column: str | None = None
    id_day: IdDay | None = None
    validity: Validity = field(default_factory=Validity)
    carried: Carried | None = None
    # Tables of events are partitioned by the UTC date of the event time.
    partition_column: str = "event_date"

    def __post_init__(self) -> None:
        _check_columns(self.name, self.columns)
        self.validity.check(self.name, self.columns)
        if self.id_column is not None and self.id_column not in self.columns:
            raise DeclarationError(f"source {self.name}: id column {self.id_column!r} is unknown")
        if self.id_day is not None and self.id_column is None:
            raise DeclarationError(f"source {self.name}: id_day needs an id_column")
        if self.carried is not None:
            for column in (self.carried.on, *self.carried.columns):
                if column not in self.columns:
                    raise DeclarationError(
                        f"source {self.name}: carried column {column!r} is not one of its columns"
                    )
            if self.carried.on in self.carried.columns:
                raise DeclarationError(
                    f"source {self.name}: {self.carried.on!r} is carried and matched on"
                )
        times = (self.timestamp_column, self.ingestion_column, self.partition_column)
        for column in times:
            check_name(f"time column of source {self.name}", column)
            if column in self.columns:
                raise DeclarationError(
                    f"source {self.name}: {column!r} is a time column, not a declared column"
                )
        if len(set(times)) != len(times):
            raise DeclarationError(f"source {self.name}: its time columns must differ")
        if self.max_lateness < timedelta(0):
            raise DeclarationError(f"source {self.name}: max_lateness must not be negative")

    @property
    def raw_columns(self) -> dict[str, str]:
        """The declared columns a producer writes (all but the carried ones)."""
        carried = () if self.carried is None else self.carried.columns
        return {c: t for c, t in self.columns.items() if c not in carried}

    @property
    def topic(self) -> str:
        """The Kafka topic its producers write to."""
        return topic_name(self.name)


def check_serving_lag(view: str, lag: timedelta) -> None:
    if not timedelta(0) <= lag < timedelta(hours=1):
        raise DeclarationError(
            f"feature view {view}: serving_lag must lie in [0, 1h) "
            f"(each hour is published before the next one), got {lag}"
        )


@dataclass(frozen=True)
class DimensionSource(_SourceTable):
    """A dimension table (one row per key, versioned by ingestion time)."""

    name: str
    key_column: str
    columns: dict[str, str]
    ingestion_column: str = "ingestion_timestamp"
    description: str = ""
    validity: Validity = field(default_factory=Validity)

    def __post_init__(self) -> None:
        _check_columns(self.name, self.columns)
        self.validity.check(self.name, self.columns)
        if self.key_column not in self.columns:
            raise DeclarationError(f"source {self.name}: key column {self.key_column!r} is unknown")


class Op(StrEnum):
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    APPROX_DISTINCT = "approx_distinct"


@dataclass(frozen=True)
class Aggregation:
    """`op` of `column` from `source` over each window; named `{alias or column}_{op}_{window}`.

    COUNT counts events (its `column` may be omitted, then `alias` names it);
    LAST is the value of the latest event in the window that has one (ties on event
    time: the greatest value);
    APPROX_DISTINCT is a HyperLogLog estimate of distinct values.
    """

    source: EventSource
    op: Op
    # Declared as strings ("1h", "7d") or Windows; held as Windows.
    window_specs: InitVar[Sequence[Window | str]]
    column: str | None = None
    alias: str | None = None
    windows: tuple[Window, ...] = field(init=False)

    def __post_init__(self, window_specs: Sequence[Window | str]) -> None:
        object.__setattr__(self, "op", Op(self.op))
        specs = (window_specs,) if isinstance(window_specs, str) else window_specs
        object.__setattr__(self, "windows", tuple(Window.parse(w) for w in specs))
        if not self.windows:
            raise DeclarationError(f"aggregation {self.op} of {self.column}: no windows")
        if len(set(self.windows)) != len(self.windows):
            raise DeclarationError(f"aggregation {self.op} of {self.column}: repeated window")
        if self.column is None:
            if self.op is not Op.COUNT:
                raise DeclarationError(f"aggregation {self.op} needs a column")
            if self.alias is None:
                raise DeclarationError("a count without a column needs an alias to name it")
        else:
            value_type = self.source.column_type(self.column)
            if self.op in (Op.SUM, Op.AVG) and value_type not in _NUMERIC:
                raise DeclarationError(
                    f"{self.op} of {self.column}: column is {value_type}, not numeric"
                )
        check_name("feature", self.base_name)

    @property
    def base_name(self) -> str:
        return self.alias or str(self.column)

    def feature_name(self, window: Window) -> str:
        return f"{self.base_name}_{self.op.value}_{window.label}"

    @property
    def value_type(self) -> str:
        if self.op in (Op.COUNT, Op.APPROX_DISTINCT):
            return "int64"
        if self.op in (Op.SUM, Op.AVG):
            return "float64"
        return self.source.column_type(str(self.column))

    def features(self) -> list[Feature]:
        return [
            Feature(self.feature_name(w), self.value_type, op=self.op, window=w, aggregation=self)
            for w in self.windows
        ]


@dataclass(frozen=True)
class SmoothedRatio:
    """`min(1, (numerator + prior * weight) / (denominator + weight))`: a ratio shrunk to a prior.

    Both inputs are count features of the same view. Well-defined for empty windows
    (it is then `prior`), which keeps sparse entities from producing 0/0.
    """

    name: str
    numerator: str
    denominator: str
    prior: float
    weight: float

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        if not 0.0 <= self.prior <= 1.0 or self.weight <= 0:
            raise DeclarationError(f"{self.name}: prior must lie in [0, 1] and weight be positive")


@dataclass(frozen=True)
class Feature:
    """One output column of a feature view."""

    name: str
    value_type: str
    op: Op | None = None
    window: Window | None = None
    aggregation: Aggregation | None = field(default=None, compare=False, repr=False)
    ratio: SmoothedRatio | None = field(default=None, compare=False, repr=False)
    attribute: str | None = None


@dataclass(frozen=True)
class FeatureView:
    """Windowed aggregations (and derived ratios) of one entity's events, served together."""

    name: str
    entity: Entity
    aggregations: tuple[Aggregation, ...]
    ratios: tuple[SmoothedRatio, ...] = ()
    ttl: timedelta | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    serving_lag: timedelta = DEFAULT_SERVING_LAG
    # Served fresh within seconds of each event, with sawtooth windows (module docstring).
    realtime: bool = False

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        check_serving_lag(self.name, self.serving_lag)
        if not self.aggregations:
            raise DeclarationError(f"feature view {self.name}: no aggregations")
        for agg in self.aggregations:
            key = self.entity.join_key
            if key not in agg.source.columns:
                raise DeclarationError(
                    f"feature view {self.name}: source {agg.source.name} has no join key {key!r}"
                )
        names = [f.name for f in self.features]
        _reject_duplicates(f"feature view {self.name}", names)
        counts = {f.name for f in self.features if f.op is Op.COUNT}
        for ratio in self.ratios:
            for part in (ratio.numerator, ratio.denominator):
                if part not in counts:
                    raise DeclarationError(
                        f"feature view {self.name}: ratio {ratio.name} refers to {part!r}, "
                        "which is not a count feature of this view"
                    )

    @property
    def sources(self) -> tuple[EventSource, ...]:
        seen: dict[str, EventSource] = {}
        for agg in self.aggregations:
            seen.setdefault(agg.source.name, agg.source)
        return tuple(seen.values())

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(sorted({w for agg in self.aggregations for w in agg.windows}))

    @property
    def max_window(self) -> Window:
        return max(self.windows)

    @property
    def features(self) -> list[Feature]:
        out = [f for agg in self.aggregations for f in agg.features()]
        out += [Feature(r.name, "float64", ratio=r) for r in self.ratios]
        return out

    @property
    def table(self) -> str:
        return table_name(FEATURES, self.name)

    @property
    def state_table(self) -> str:
        """Where compute keeps the mergeable window aggregates of a real-time view."""
        return table_name(STATE, self.name)

    @property
    def effective_ttl(self) -> timedelta:
        """How long the latest row stays valid; by default the largest window plus a day."""
        return self.ttl if self.ttl is not None else self.max_window.duration + timedelta(days=1)


@dataclass(frozen=True)
class AttributeView:
    """Static attributes of an entity from a dimension table, versioned by ingestion time.

    A row's `event_timestamp` is when that version of the attributes arrived (the
    dimension row's ingestion time), so point-in-time joins never see an attribute
    before it existed; its `created_timestamp` is the end of that hour, when the hourly
    pipeline knew it. No TTL: attributes stay valid until replaced.
    """

    name: str
    entity: Entity
    source: DimensionSource
    attributes: tuple[str, ...]
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    serving_lag: timedelta = DEFAULT_SERVING_LAG

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        check_serving_lag(self.name, self.serving_lag)
        if self.source.key_column != self.entity.join_key:
            raise DeclarationError(
                f"feature view {self.name}: source key {self.source.key_column!r} "
                f"is not the entity's join key {self.entity.join_key!r}"
            )
        for attribute in self.attributes:
            self.source.column_type(attribute)
        _reject_duplicates(f"feature view {self.name}", list(self.attributes))

    @property
    def features(self) -> list[Feature]:
        return [Feature(a, self.source.column_type(a), attribute=a) for a in self.attributes]

    @property
    def table(self) -> str:
        return table_name(FEATURES, self.name)

    @property
    def effective_ttl(self) -> timedelta:
        return timedelta(0)


AnyView = FeatureView | AttributeView


@dataclass(frozen=True)
class ClickLabels:
    """Labels of ad impressions: clicked iff a click on the same impression came at most
    `window` after it.

    Clicks arrive late too, so the labels of an interval are final only `maturity` after
    it: the click window plus the clicks' `max_lateness`, rounded up to whole hours (the
    pipeline ingests by the hour). Label jobs count the clicks ingested by then and no
    later ones, so labels built at any later time are the same.
    """

    name: str
    impressions: EventSource
    clicks: EventSource
    window: timedelta

    def __post_init__(self) -> None:
        check_name("labels", self.name)
        if self.window <= timedelta(0):
            raise DeclarationError(f"labels {self.name}: the click window must be positive")

    @property
    def maturity(self) -> timedelta:
        hour = timedelta(hours=1)
        return -(-(self.window + self.clicks.max_lateness) // hour) * hour


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model consumes: `{view name: feature names}` (empty tuple = all)."""

    name: str
    features: dict[str, tuple[str, ...]]
    description: str = ""

    def __post_init__(self) -> None:
        check_name("feature service", self.name)


def _reject_duplicates(where: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DeclarationError(f"{where}: duplicate feature name {name!r}")
        seen.add(name)


@dataclass(frozen=True)
class Registry:
    """All declarations, checked together: unique names, services that resolve."""

    entities: tuple[Entity, ...]
    views: tuple[AnyView, ...]
    services: tuple[FeatureService, ...]

    def __post_init__(self) -> None:
        _reject_duplicates("registry (entities)", [e.name for e in self.entities])
        _reject_duplicates("registry (feature views)", [v.name for v in self.views])
        _reject_duplicates("registry (feature services)", [s.name for s in self.services])
        # Feature names are unique across views, so a training set never has to rename.
        _reject_duplicates(
            "registry (features across views)", [f.name for v in self.views for f in v.features]
        )
        entity_names = {e.name for e in self.entities}
        for view in self.views:
            if view.entity.name not in entity_names:
                raise DeclarationError(
                    f"feature view {view.name}: entity {view.entity.name} is not registered"
                )
        for service in self.services:
            for view_name, names in service.features.items():
                view = self.view(view_name)
                known = {f.name for f in view.features}
                for name in names:
                    if name not in known:
                        raise DeclarationError(
                            f"feature service {service.name}: view {view_name} has no feature {name!r}"
                        )

    def view(self, name: str) -> AnyView:
        for view in self.views:
            if view.name == name:
                return view
        known = ", ".join(v.name for v in self.views)
        raise DeclarationError(f"unknown feature view {name!r} (known: {known})")

    def select_views(self, refs: Iterable[str | AnyView] | None) -> list[AnyView]:
        """The views named (or given) in `refs`, in order, each once; None means every view.
        Every command and job that takes a view selection resolves it here."""
        if refs is None:
            return list(self.views)
        selected: dict[str, AnyView] = {}
        for ref in refs:
            view = ref if isinstance(ref, FeatureView | AttributeView) else self.view(ref.strip())
            selected.setdefault(view.name, view)
        if not selected:
            raise DeclarationError("no feature views selected")
        return list(selected.values())

    def service(self, name: str) -> FeatureService:
        for service in self.services:
            if service.name == name:
                return service
        known = ", ".join(s.name for s in self.services)
        raise DeclarationError(f"unknown feature service {name!r} (known: {known})")

    def resolve(self, refs: list[str] | str) -> dict[str, list[str]]:
        """Turn a service name or `"view:feature"` references into `{view: [features]}`, in order."""
        if isinstance(refs, str):
            service = self.service(refs)
            return {
                view: list(names) or [f.name for f in self.view(view).features]
                for view, names in service.features.items()
            }
        out: dict[str, list[str]] = {}
        for ref in refs:
            if ":" not in ref:
                raise DeclarationError(
                    f"feature reference {ref!r} is not of the form 'view:feature'"
                )
            view_name, feature_name = ref.split(":", 1)
            view = self.view(view_name)
            if feature_name not in {f.name for f in view.features}:
                raise DeclarationError(
                    f"unknown feature {ref!r}: view {view_name} has no {feature_name!r}"
                )
            out.setdefault(view_name, []).append(feature_name)
        return out
