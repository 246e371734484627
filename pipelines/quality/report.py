"""What a validation run found, per table, in a form a gate and a person can read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.interval import Interval

MAX_SHOWN_VALUE = 40


@dataclass(frozen=True)
class Failure:
    """One failing expectation: the rule (naming the table and column), and evidence."""

    expectation: str
    description: str
    columns: tuple[str, ...]
    observed: str
    examples: tuple[dict[str, str], ...] = ()
    # "e.g." for sample offending rows; "observed" when the rows are the evidence itself.
    examples_label: str = "e.g."

    def render(self) -> list[str]:
        lines = [f"  x {self.description}"]
        if self.observed:
            lines.append(f"      {self.observed}")
        for row in self.examples:
            pairs = " ".join(f"{k}={_short(v)}" for k, v in row.items())
            lines.append(f"      {self.examples_label} {pairs}")
        return lines


@dataclass(frozen=True)
class TableResult:
    """The outcome of one suite on one DataFrame (one table's interval)."""

    name: str
    success: bool
    expectations: int
    rows: int
    seconds: float
    failures: tuple[Failure, ...] = ()
    notes: tuple[str, ...] = ()
    docs_page: Path | None = None

    def failures_about(self, column: str) -> list[Failure]:
        """The failures about `column` (a feature, key or timestamp column)."""
        return [f for f in self.failures if column in f.columns]

    def render(self) -> list[str]:
        status = "PASS" if self.success else "FAIL"
        lines = [
            f"{status}  {self.name:<34} {self.rows:>9} rows  {self.expectations:>3} expectations"
            f"  {self.seconds:5.1f}s"
        ]
        lines += [f"  note: {note}" for note in self.notes]
        for failure in self.failures:
            lines += failure.render()
        if not self.success and self.docs_page is not None:
            lines.append(f"  data docs: {self.docs_page}")
        return lines


@dataclass(frozen=True)
class ValidationReport:
    interval: Interval
    tables: tuple[TableResult, ...]
    docs_index: Path
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(t.success for t in self.tables)

    @property
    def failed(self) -> list[TableResult]:
        return [t for t in self.tables if not t.success]

    def table(self, name: str) -> TableResult:
        for result in self.tables:
            if result.name == name:
                return result
        raise KeyError(f"{name} was not validated (validated: {[t.name for t in self.tables]})")

    def render(self) -> str:
        lines = [f"validation of {self.interval}"]
        for result in self.tables:
            lines += result.render()
        verdict = (
            f"PASSED: {len(self.tables)} tables"
            if self.success
            else f"FAILED: {len(self.failed)} of {len(self.tables)} tables"
        )
        lines.append(f"{verdict} in {self.seconds:.1f}s")
        lines.append(f"data docs: {self.docs_index}")
        return "\n".join(lines)


def _short(value: str) -> str:
    return value if len(value) <= MAX_SHOWN_VALUE else value[: MAX_SHOWN_VALUE - 3] + "..."
