"""The error tree of qrt. Every error a user can cause is a ``QrtError`` and knows its exit code.

::

    QrtError (exit 1)                      anything qrt reports as one clear message
    ├── ManifestError                      a manifest is malformed; carries file and line
    ├── ConfigError                        qrt.yaml, accounts, command-line usage
    ├── LockfileError                      qrt.lock unreadable, locked by another apply, wrong target
    ├── PlanError                          the plan cannot be made (adoption needed, stale plan file)
    └── RuntimeApiError                    the runtime refused or failed a call
        ├── NotFoundError                  program or job unknown (or not visible to this user)
        ├── ConflictError                  duplicate program name, job not cancellable
        ├── AuthError                      missing or bad token (never quoting it)
        └── TransportError                 the runtime could not be reached after retries

``cli.py`` is the one place these become exit codes and messages; nothing else prints them.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "LockfileError",
    "ManifestError",
    "NotFoundError",
    "PlanError",
    "QrtError",
    "RuntimeApiError",
    "TransportError",
]


class QrtError(Exception):
    """A problem reported to the user as one message, without a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ManifestError(QrtError):
    """A manifest document is invalid. ``path`` and ``line`` (1-based) locate it."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class ConfigError(QrtError):
    """Project file, account or command-line usage problem."""


class LockfileError(QrtError):
    """The lockfile cannot be read, written, locked, or belongs to another target."""


class PlanError(QrtError):
    """The desired state cannot be planned as it stands."""


class RuntimeApiError(QrtError):
    """The runtime refused or failed a call. ``status`` is the HTTP status when there is one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(RuntimeApiError):
    """A program or job does not exist, or is not visible to this user."""


class ConflictError(RuntimeApiError):
    """A duplicate program name, or a job in a state that forbids the call."""


class AuthError(RuntimeApiError):
    """The runtime rejected the credentials."""


class TransportError(RuntimeApiError):
    """The runtime could not be reached, even after retries."""
