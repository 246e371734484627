"""The platform's one error hierarchy. Its root lives in the declarations' layer because
declaration errors are its first members and `features/` imports nothing of `pipelines/`.

Every error a user can cause is a `PlatformError` whose message is one line naming the
culprit; the CLI prints it as such, with a non-zero exit.
"""

from __future__ import annotations


class PlatformError(Exception):
    """A user-facing failure: bad input, a missing table, an unreachable service."""


class DeclarationError(PlatformError):
    """A declaration that cannot be executed; the message names the culprit."""
