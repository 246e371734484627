"""Why a row is invalid, derived from each source's declared `Validity`.

A reason is `kind:column`, e.g. `not_finite:watch_seconds`: what is wrong, and where.
A row gets exactly one reason, the first that applies, in `Kind` order: content
problems first (they make a row unusable whatever else holds), then problems that
depend on other rows (an orphan click, a duplicate), so a valid row is never
dropped in favour of a broken copy.

Ingest quarantines rows with a reason. Compute skips the rows it cannot aggregate
(`UNUSABLE`: a value that is not finite or out of its range, a time before `earliest`),
so a bad value that reaches a clean table some other way is counted and skipped instead
of stopping every compute whose window covers it; the other rules (required columns,
categories, clock skew) are ingest's and the clean tables' quality gate's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

from pyspark.sql import Column
from pyspark.sql import functions as F

from features import DimensionSource, EventSource
from pipelines.interval import utc_literal

AnySource = EventSource | DimensionSource


class Kind(StrEnum):
    NULL = "null"  # a required value is missing
    NOT_FINITE = "not_finite"  # NaN or an infinity
    OUT_OF_RANGE = "out_of_range"  # outside the declared range, or a time before `earliest`
    NOT_ALLOWED = "not_allowed"  # a category outside the declared set
    FUTURE = "future"  # event time after its arrival by more than the clock skew
    ORPHAN = "orphan"  # a click whose impression was never accepted
    DUPLICATE = "duplicate"  # an id (or dimension version) that was already accepted
    CONFLICT = "conflict"  # another row of the same dimension version won (see `version_tuple`)


KINDS: tuple[Kind, ...] = tuple(Kind)
# What compute cannot aggregate: an overflowing sum, a NaN max, a window back in 1970.
UNUSABLE: tuple[Kind, ...] = (Kind.NOT_FINITE, Kind.OUT_OF_RANGE)


def reason(kind: Kind, column: str) -> str:
    return f"{kind}:{column}"


def kind_of(text: str) -> Kind | None:
    try:
        return Kind(text.split(":", 1)[0])
    except ValueError:
        return None


def reason_order(reasons: Iterable[str]) -> list[str]:
    """Reasons by kind precedence, then name (unknown kinds last)."""

    def rank(text: str) -> tuple[int, str]:
        kind = kind_of(text)
        return (len(KINDS) if kind is None else KINDS.index(kind), text)

    return sorted(reasons, key=rank)


def identity_column(source: AnySource) -> str | None:
    """The column whose value identifies a row: an event id, a dimension key."""
    return source.key_column if isinstance(source, DimensionSource) else source.id_column


def _required(source: AnySource) -> list[str]:
    columns = [source.ingestion_column]
    identity = identity_column(source)
    if identity is not None:
        columns.append(identity)
    if isinstance(source, EventSource):
        columns.append(source.timestamp_column)
    columns += source.validity.required
    return list(dict.fromkeys(columns))


def row_checks(source: AnySource, present: Sequence[str]) -> list[tuple[str, Column]]:
    """(reason, condition) of each check that looks at one row alone, in precedence order.

    Only columns in `present` are checked (a raw click has no member yet). A condition
    may be null for null inputs; only true flags a row.
    """
    validity = source.validity
    has = set(present)
    checks: list[tuple[str, Column]] = []
    for column in _required(source):
        if column in has:
            checks.append((reason(Kind.NULL, column), F.col(column).isNull()))
    for column, value_type in source.columns.items():
        if value_type == "float64" and column in has:
            value = F.col(column)
            infinite = value.isin(float("inf"), float("-inf"))
            checks.append((reason(Kind.NOT_FINITE, column), F.isnan(value) | infinite))
    times = [source.ingestion_column]
    if isinstance(source, EventSource):
        times.append(source.timestamp_column)
    for column in times:
        if column in has:
            too_early = F.col(column) < utc_literal(validity.earliest)
            checks.append((reason(Kind.OUT_OF_RANGE, column), too_early))
    for column, bounds in validity.ranges.items():
        if column in has:
            outside = F.lit(False)
            if bounds.low is not None:
                outside = outside | (F.col(column) < F.lit(bounds.low))
            if bounds.high is not None:
                outside = outside | (F.col(column) > F.lit(bounds.high))
            checks.append((reason(Kind.OUT_OF_RANGE, column), outside))
    for column, values in validity.allowed.items():
        if column in has:
            checks.append((reason(Kind.NOT_ALLOWED, column), ~F.col(column).isin(*values)))
    if (
        isinstance(source, EventSource)
        and {source.timestamp_column, source.ingestion_column} <= has
    ):
        # In microseconds, so the tolerance needs no interval arithmetic.
        ahead = F.unix_micros(source.timestamp_column) - F.unix_micros(source.ingestion_column)
        skew = int(validity.clock_skew.total_seconds() * 1_000_000)
        checks.append((reason(Kind.FUTURE, source.timestamp_column), ahead > F.lit(skew)))
    return checks


def row_problem(source: AnySource, present: Sequence[str], kinds: Sequence[Kind] = KINDS) -> Column:
    """The first row-local reason of a row (a string) among `kinds`, or null when none
    applies."""
    problem = F.lit(None).cast("string")
    checks = [(t, c) for t, c in row_checks(source, present) if kind_of(t) in kinds]
    for text, condition in reversed(checks):
        problem = F.when(F.coalesce(condition, F.lit(False)), F.lit(text)).otherwise(problem)
    return problem


def version_tuple(source: DimensionSource) -> Column:
    """The declared columns of a dimension row but its key, in declaration order.

    Rows of one version (key, ingestion time) that disagree resolve to the greatest
    tuple (nulls lowest). Ingest keeps that row and quarantines the others
    (`conflict:<key>`); attribute views resolve rows that other tools wrote the same way.
    """
    return F.struct(*[F.col(c) for c in source.columns if c != source.key_column])
