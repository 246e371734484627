"""Ingestion with quarantine: raw rows become clean rows or quarantined rows with a reason."""

from __future__ import annotations

from pipelines.ingest.job import IngestReport, TableCounts, ingest
from pipelines.ingest.reasons import PRECEDENCE, Reason

__all__ = ["PRECEDENCE", "IngestReport", "Reason", "TableCounts", "ingest"]
