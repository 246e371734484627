"""Realistic raw data for the platform: a streaming service with ads.

`generate(spark, start=..., end=...)` writes the rows that arrive within an
interval into `raw.*`; the same seed and scale always give the same rows.
"""

from __future__ import annotations

from pipelines.generate.job import generate
from pipelines.generate.world import GeneratorConfig, GeneratorConfigError, World, build_world

__all__ = ["GeneratorConfig", "GeneratorConfigError", "World", "build_world", "generate"]
