"""Errors the CLI reports as one clear line with a non-zero exit (`features.errors`)."""

from __future__ import annotations

from features.errors import DeclarationError, PlatformError

__all__ = ["DeclarationError", "IntervalError", "MissingTableError", "PlatformError"]


class IntervalError(PlatformError):
    pass


class MissingTableError(PlatformError):
    pass
