"""Training sets: point-in-time-correct joins of labels to feature tables, reproducible."""

from __future__ import annotations

from pipelines.training.api import TrainingSetError, build_training_set
from pipelines.training.asof import SkewPolicy
from pipelines.training.labels import click_labels, ctr_labels, write_ctr_labels
from pipelines.training.reproduce import reproduce
from pipelines.training.spec import Mode

__all__ = [
    "Mode",
    "SkewPolicy",
    "TrainingSetError",
    "build_training_set",
    "click_labels",
    "ctr_labels",
    "reproduce",
    "write_ctr_labels",
]
