"""Errors the CLI reports as one clear line with a non-zero exit."""

from __future__ import annotations


class PlatformError(Exception):
    """A user-facing failure: bad input, a missing table, an unreachable service."""


class IntervalError(PlatformError, ValueError):
    pass


class MissingTableError(PlatformError):
    pass
