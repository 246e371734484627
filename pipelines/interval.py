"""Explicit data intervals `[start, end)` in UTC: every job takes one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pipelines.errors import IntervalError

if TYPE_CHECKING:  # serving processes import this module without loading Spark
    from pyspark.sql import Column

HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: str | datetime | date) -> datetime:
    """Parse an ISO date or datetime; naive values are UTC, aware ones are converted to UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise IntervalError(
                f"not a date or datetime: {value!r} (expected e.g. 2026-01-01 or 2026-01-01T05:00)"
            ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    # A plain datetime, also for subclasses (Airflow hands over pendulum DateTimes, whose
    # differences are not timedeltas).
    return datetime(
        parsed.year,
        parsed.month,
        parsed.day,
        parsed.hour,
        parsed.minute,
        parsed.second,
        parsed.microsecond,
        tzinfo=UTC,
    )


def utc_literal(moment: datetime) -> Column:
    """A Spark timestamp literal for `moment` (naive values are UTC).

    PySpark turns a naive datetime into an instant with the Python process's local time
    zone, not the session's, so a naive literal would shift on a machine not in UTC.
    """
    from pyspark.sql import functions as F

    return F.lit(parse_time(moment))


def sql_timestamp(moment: datetime) -> str:
    """A Spark SQL timestamp literal for `moment` (naive values are UTC), for SQL text such as
    Delta's replaceWhere; the session reads it in its time zone, UTC."""
    utc = parse_time(moment).replace(tzinfo=None)
    return f"TIMESTAMP '{utc.isoformat(sep=' ')}'"


def from_unix_micros(micros: int) -> datetime:
    """The UTC datetime of a `unix_micros` value: collecting a timestamp column instead
    would give a naive datetime in the Python process's local time zone."""
    return _EPOCH + timedelta(microseconds=micros)


def to_unix_micros(moment: datetime) -> int:
    """Microseconds from the epoch to `moment` (an aware or a naive UTC datetime)."""
    return (parse_time(moment) - _EPOCH) // timedelta(microseconds=1)


def hour_number(moment: datetime) -> int:
    """Whole hours from the epoch to `moment` (an aware or a naive UTC datetime)."""
    return (moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)) // HOUR


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval `[start, end)`."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise IntervalError("interval bounds must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise IntervalError(
                f"empty or reversed interval: start {self.start.isoformat()} is not before end {self.end.isoformat()}"
            )

    @classmethod
    def parse(cls, start: str | datetime | date, end: str | datetime | date) -> Interval:
        return cls(parse_time(start), parse_time(end))

    def require_hour_aligned(self) -> Interval:
        for bound in (self.start, self.end):
            if bound != floor_hour(bound):
                raise IntervalError(f"interval bounds must be whole hours, got {bound.isoformat()}")
        return self

    def chunks(self, size: timedelta) -> Iterator[Interval]:
        cursor = self.start
        while cursor < self.end:
            nxt = min(cursor + size, self.end)
            yield Interval(cursor, nxt)
            cursor = nxt

    @property
    def hours(self) -> float:
        return (self.end - self.start) / HOUR

    def sql(
        self, column: str, *, closed: str = "start", partition_column: str | None = None
    ) -> str:
        """SQL text (reads, Delta's replaceWhere, GE queries) selecting `column` in
        `[start, end)`, or in `(start, end]` with `closed="end"` (versions created in a run).

        `partition_column` names the table's partition column when it holds the UTC date of
        `column` (`event_date` of event and feature tables): the condition then also bounds
        it, so a read skips every other day's files. The time condition is the exact one."""
        lo, hi = sql_timestamp(self.start), sql_timestamp(self.end)
        if closed == "start":
            condition = f"{column} >= {lo} AND {column} < {hi}"
        elif closed == "end":
            condition = f"{column} > {lo} AND {column} <= {hi}"
        else:
            raise ValueError(f"closed must be 'start' or 'end', not {closed!r}")
        if partition_column is None:
            return condition
        first_day, last_day = self.start.date().isoformat(), self.end.date().isoformat()
        return (
            f"{condition} AND {partition_column} BETWEEN DATE '{first_day}' AND DATE '{last_day}'"
        )

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"
