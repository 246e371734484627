"""What a written training set records about how it was built (as Delta table properties)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipelines.errors import PlatformError
from pipelines.training.spec import Mode, ViewRead

METADATA_PROPERTY = "training_set.metadata"
# Also recorded on their own, so `SHOW TBLPROPERTIES` answers the common questions.
DEFINITIONS_HASH_PROPERTY = "training_set.definitions_hash"
FEATURE_VERSIONS_PROPERTY = "training_set.feature_table_versions"
LABELS_PROPERTY = "training_set.labels"
# 2: `mode` replaced the boolean `as_known_at` (format 1 is still read).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class LabelsRecord:
    """Where the labels were read: a Delta table or path at a version.

    `origin` says what the caller passed; labels that were not a Delta table (an
    in-memory DataFrame, a non-Delta table) are written next to the training set first,
    and `ref` points at that copy.
    """

    ref: str
    version: int
    origin: str

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "version": self.version, "origin": self.origin}


@dataclass(frozen=True)
class TrainingSetRecord:
    features: str | list[str]
    timestamp_column: str
    mode: Mode
    views: tuple[ViewRead, ...]
    definitions_hash: str
    labels: LabelsRecord

    def to_properties(self) -> dict[str, str]:
        record = {
            "format": FORMAT_VERSION,
            "features": self.features,
            "timestamp_column": self.timestamp_column,
            "mode": self.mode.value,
            "views": [v.to_json() for v in self.views],
            "definitions_hash": self.definitions_hash,
            "labels": self.labels.to_json(),
        }
        versions = {v.table: v.version for v in self.views}
        return {
            METADATA_PROPERTY: _dumps(record),
            DEFINITIONS_HASH_PROPERTY: self.definitions_hash,
            FEATURE_VERSIONS_PROPERTY: _dumps(versions),
            LABELS_PROPERTY: _dumps(self.labels.to_json()),
        }

    @classmethod
    def from_properties(cls, where: str, properties: dict[str, str]) -> TrainingSetRecord:
        text = properties.get(METADATA_PROPERTY)
        if text is None:
            raise PlatformError(
                f"{where} is not a training set written by build_training_set "
                f"(no {METADATA_PROPERTY} table property)"
            )
        record = json.loads(text)
        if record.get("format") not in (1, FORMAT_VERSION):
            raise PlatformError(
                f"{where}: unsupported training set metadata format {record.get('format')!r}"
            )
        if record["format"] == 1:
            mode = Mode.KNOWN if record["as_known_at"] else Mode.FEAST
        else:
            mode = Mode(record["mode"])
        labels = record["labels"]
        return cls(
            features=record["features"],
            timestamp_column=record["timestamp_column"],
            mode=mode,
            views=tuple(ViewRead.from_json(v) for v in record["views"]),
            definitions_hash=record["definitions_hash"],
            labels=LabelsRecord(labels["ref"], int(labels["version"]), labels["origin"]),
        )


def _dumps(value: Any) -> str:
    # Table property values are SQL string literals: keep them on one line.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
