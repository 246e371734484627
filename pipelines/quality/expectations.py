"""Great Expectations 1.x expectations that carry what a failure report needs.

Every expectation built here has a `description` naming the table and the feature or
column it is about, and in its `meta` the Spark SQL (over `{batch}`, the validated
DataFrame) that lists the offending rows, so a failure can be shown with examples
without asking GE for them (GE then only computes pass/fail: the cheap result format).

Timestamp bounds are written as SQL literals and compared inside Spark, whose session
time zone is UTC; comparing them in Python would go through the driver's local zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from pipelines.interval import sql_timestamp

EXAMPLES_SQL = "examples_sql"
COLUMNS = "columns"
# What one row of the examples query stands for, when counting them means something.
COUNTS = "counts"
# For an expectation bundling several row rules: the meta of each rule.
RULES = "rules"


def meta(
    examples_sql: str, columns: Sequence[str], counts: str | None = "offending rows"
) -> dict[str, object]:
    return {EXAMPLES_SQL: examples_sql, COLUMNS: list(columns), COUNTS: counts}


def _select(columns: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(columns)) or "*"


def rows_where(condition: str, show: Sequence[str]) -> str:
    return f"SELECT {_select(show)} FROM {{batch}} WHERE {condition}"


def not_null(column: str, *, about: str, ident: Sequence[str]) -> Expectation:
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column,
        description=f"{about}: {column} is never null",
        meta=meta(rows_where(f"{column} IS NULL", [*ident, column]), [column]),
    )


def between(
    column: str,
    *,
    min_value: float | None,
    max_value: float | None = None,
    about: str,
    ident: Sequence[str],
    why: str = "",
) -> Expectation:
    bounds = []
    if min_value is not None:
        bounds.append(f"{column} >= {min_value!r}")
    if max_value is not None:
        bounds.append(f"{column} <= {max_value!r}")
    rule = " AND ".join(bounds)
    text = f"{about}: {rule.replace(' AND ', ' and ')}" + (f" ({why})" if why else "")
    return gxe.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=min_value,
        max_value=max_value,
        description=text,
        meta=meta(rows_where(f"NOT ({rule})", [*ident, column]), [column]),
    )


def ratios_at_most(
    tolerance: float, ratios: Sequence[tuple[str, str]], *, about: str, ident: Sequence[str]
) -> list[Expectation]:
    """Each (ratio column, why) in [0, tolerance]: the gate of a comparison's measures."""
    return [
        between(column, min_value=0.0, max_value=tolerance, about=about, ident=ident, why=why)
        for column, why in ratios
    ]


def unique(columns: Sequence[str], *, about: str) -> Expectation:
    cols = ", ".join(columns)
    examples = (
        f"SELECT {cols}, count(*) AS copies FROM {{batch}} GROUP BY {cols} HAVING count(*) > 1"
    )
    return gxe.ExpectCompoundColumnsToBeUnique(
        column_list=list(columns),
        description=f"{about}: ({cols}) is unique",
        meta=meta(examples, columns, counts="duplicated keys"),
    )


def at_least(
    column_a: str, column_b: str, *, about: str, ident: Sequence[str], why: str
) -> Expectation:
    """`column_a >= column_b` on every row where both are present (nulls are checked apart)."""
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=column_a,
        column_B=column_b,
        or_equal=True,
        ignore_row_if="either_value_is_missing",
        description=f"{about}: {column_b} <= {column_a} ({why})",
        meta=meta(
            rows_where(f"{column_a} < {column_b}", [*ident, column_b, column_a]),
            [column_b, column_a],
        ),
    )


@dataclass(frozen=True)
class RowRule:
    """A rule every row must satisfy, given as the Spark SQL condition of a violation."""

    label: str
    violation: str
    columns: tuple[str, ...]
    why: str = ""

    def describe(self, about: str) -> str:
        return f"{about}: {self.label}" + (f" ({self.why})" if self.why else "")


def rows_satisfy(rules: Sequence[RowRule], *, about: str, ident: Sequence[str]) -> Expectation:
    """No row breaks any of `rules`: one expectation, so one pass over the batch for all.

    GE runs a query per UnexpectedRowsExpectation; bundling the rules GE has no
    expectation for keeps a wide feature table to a couple of Spark jobs. The rows it
    returns name the rules they break, and the report splits failures per rule.
    """
    labels = ", ".join(f"IF({r.violation}, {_sql_string(r.label)}, NULL)" for r in rules)
    query = (
        f"SELECT {_select(ident)}, filter(array({labels}), rule -> rule IS NOT NULL)"
        f" AS broken_rules FROM {{batch}} WHERE " + " OR ".join(f"({r.violation})" for r in rules)
    )
    columns = [c for r in rules for c in r.columns]
    described = "; ".join(f"{r.label}" + (f" ({r.why})" if r.why else "") for r in rules)
    info = meta(query, columns)
    info[RULES] = [
        meta(rows_where(r.violation, [*ident, *r.columns]), r.columns)
        | {"description": r.describe(about)}
        for r in rules
    ]
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query,
        description=f"{about}: every row satisfies: {described}",
        meta=info,
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def no_rows_where(
    condition: str, *, description: str, show: Sequence[str], columns: Sequence[str]
) -> Expectation:
    """No row of the batch satisfies the Spark SQL `condition`."""
    query = rows_where(condition, show)
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query, description=description, meta=meta(query, columns)
    )


def latest_not_before(column: str, bound: datetime, *, about: str, why: str) -> Expectation:
    """max(column) exists and is at or after `bound`: the batch is not stale or empty."""
    literal = sql_timestamp(bound)
    query = (
        f"SELECT max({column}) AS latest_{column}, count(*) AS rows FROM {{batch}} "
        f"HAVING max({column}) IS NULL OR max({column}) < {literal}"
    )
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query,
        description=f"{about}: latest {column} >= {bound.isoformat()} ({why})",
        meta=meta(query, [column], counts=None),
    )


def row_count_between(min_value: int, max_value: int, *, about: str, why: str) -> Expectation:
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=min_value,
        max_value=max_value,
        description=f"{about}: between {min_value} and {max_value} rows ({why})",
        meta=meta("SELECT count(*) AS rows FROM {batch}", [], counts=None),
    )


def columns_match(columns: Sequence[str], *, about: str, exact: bool) -> Expectation:
    rule = "exactly" if exact else "at least"
    return gxe.ExpectTableColumnsToMatchSet(
        column_set=list(columns),
        exact_match=exact,
        description=f"{about}: has {rule} the columns {', '.join(columns)}",
        meta=meta("", columns, counts=None),
    )


def of_type(column: str, spark_type_name: str, *, about: str) -> Expectation:
    return gxe.ExpectColumnValuesToBeOfType(
        column=column,
        type_=spark_type_name,
        description=f"{about}: {column} is {spark_type_name}",
        meta=meta("", [column], counts=None),
    )
