"""Feast definitions: built from the platform's declarations (see pipelines/feast_repo.py)."""

from pipelines.feast_repo import feast_objects

globals().update(feast_objects())
