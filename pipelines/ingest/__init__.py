"""Ingestion with quarantine: raw rows become clean rows or quarantined rows with a reason."""

from __future__ import annotations

from pipelines.ingest.job import IngestReport, TableCounts, ingest

__all__ = ["IngestReport", "TableCounts", "ingest"]
