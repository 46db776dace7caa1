"""Plain records of the local runtime's store: rows as frozen dataclasses, listing filters, times.

Kept apart from ``store.py`` (the SQLite code) so the data shapes read at a glance. Times are ISO 8601
UTC text with microseconds and ``Z``, so that they sort as text in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "JobQuery",
    "JobRecord",
    "ProgramRecord",
    "SessionRecord",
    "UserRecord",
    "format_time",
    "utc_now",
]


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``: sorts as text, parses with ``fromisoformat``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    return format_time(datetime.now(UTC))


@dataclass(frozen=True)
class UserRecord:
    id: str
    name: str
    created: str
    tokens: int


@dataclass(frozen=True)
class ProgramRecord:
    id: str
    owner: str
    name: str
    source: str
    description: str
    max_execution_time: int
    spec: dict[str, Any]
    is_public: bool
    created: str
    updated: str


@dataclass(frozen=True)
class SessionRecord:
    id: str
    owner: str
    created: str
    closed: str | None
    max_time: int | None


@dataclass(frozen=True)
class JobRecord:
    id: str
    owner: str
    program_id: str
    backend: str
    status: str
    created: str
    cost: int
    reason: str | None = None
    started: str | None = None
    ended: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    log_level: str | None = None
    runner: str | None = None
    runner_start: str | None = None
    metrics: dict[str, Any] | None = None
    params: str | None = (
        None  # RuntimeEncoder JSON as received; only from get_job(with_params=True)
    )


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job listing; ``tags`` must ALL be on a job for it to match."""

    limit: int | None = None
    offset: int = 0
    backend: str | None = None
    pending: bool | None = None
    program_id: str | None = None
    tags: Sequence[str] = ()
    session_id: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    descending: bool = True
