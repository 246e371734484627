"""Errors the CLI reports as one clear line with a non-zero exit (`features.errors`)."""

from __future__ import annotations

from features.errors import DeclarationError, PlatformError

__all__ = [
    "DeclarationError",
    "IntervalError",
    "MissingTableError",
    "NothingToCheckError",
    "PlatformError",
]


class IntervalError(PlatformError):
    pass


class MissingTableError(PlatformError):
    pass


class NothingToCheckError(PlatformError):
    """A checking step found nothing to check in its interval (no logged request, no
    reference to compare with): a scheduled task is skipped, not failed."""
