"""Data-quality gates: Great Expectations suites derived from the feature declarations.

`validate(spark, start=..., end=...)` checks one interval of the feature tables and the
clean event tables and returns a `ValidationReport`; `QualityRunner` validates any Spark
DataFrame against a list of expectations and writes Data Docs.
"""

from __future__ import annotations

from pipelines.quality.gate import validate
from pipelines.quality.report import Failure, TableResult, ValidationReport
from pipelines.quality.runner import QualityRunner
from pipelines.quality.suites import DEFAULT_POLICY, QualityPolicy

__all__ = [
    "DEFAULT_POLICY",
    "Failure",
    "QualityPolicy",
    "QualityRunner",
    "TableResult",
    "ValidationReport",
    "validate",
]
