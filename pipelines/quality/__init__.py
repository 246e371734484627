"""Data-quality gates: Great Expectations suites derived from the feature declarations.

`validate(spark, start=..., end=...)` checks one interval of the feature tables and the
clean event tables and returns a `ValidationReport`; `QualityRunner` validates any Spark
DataFrame against a list of expectations and writes Data Docs. The consistency check
(`pipelines.quality.consistency`) compares Redis with the Delta tables.

Names are imported on first use: Great Expectations takes seconds to import, and the
CLI should not pay for it on commands that do not validate.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "validate": "pipelines.quality.gate",
    "Failure": "pipelines.quality.report",
    "TableResult": "pipelines.quality.report",
    "ValidationReport": "pipelines.quality.report",
    "QualityRunner": "pipelines.quality.runner",
    "DEFAULT_POLICY": "pipelines.quality.suites",
    "QualityPolicy": "pipelines.quality.suites",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines.quality' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
