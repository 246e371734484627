"""The feature computation engine: declared views -> point-in-time-correct Delta tables.

`compute(spark, start=..., end=...)` writes the rows of an interval;
`backfill(...)` does it chunk by chunk, resumably. The semantics are stated in
`features.core` and `pipelines.compute.job`; `pipelines.compute.windows` explains
how windows are evaluated over hourly tiles.
"""

from __future__ import annotations

from pipelines.compute.backfill import backfill, progress_table
from pipelines.compute.job import compute

__all__ = [
    "backfill",
    "compute",
    "progress_table",
]
