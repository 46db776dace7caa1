"""Checks of the values a caller hands the runtime service (over HTTP or in-process), so that
what reaches the store and the executor is in range and storable: bad input is a 400 with a clear
message, never a 500 from SQLite, the clock or the JSON decoder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from qrt_apply.engine.records import format_time
from qrt_apply.errors import RuntimeApiError

__all__ = [
    "MAX_ROWS",
    "MAX_SECONDS",
    "bad",
    "json_object",
    "optional_text",
    "paging",
    "positive_int",
    "program_spec",
    "storable_text",
    "tag_list",
    "timestamp",
]

MAX_SECONDS = 366 * 24 * 3600  # longest max_execution_time or session max_time accepted
MAX_ROWS = 2**31 - 1  # largest listing limit/offset: beyond any store, well inside SQLite's int64
MIN_YEAR = 1000  # earliest time filter: stored times have four-digit years and compare as text


def bad(message: str) -> RuntimeApiError:
    return RuntimeApiError(message, status=400)


def positive_int(value: Any, what: str, *, maximum: int = MAX_SECONDS) -> int:
    """A whole number from 1 to ``maximum``. Every caller passes seconds (max_execution_time,
    cost, a session's max time), so the default bound is a year: larger values are mistakes, and
    the bound keeps them far from SQLite's 64-bit integers and from the executor's deadlines."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise bad(f"{what} must be a whole number from 1 to {maximum}")
    return value


def paging(limit: Any, offset: Any) -> None:
    """``limit`` (None: all) and ``offset`` of a listing: whole numbers SQLite can bind."""
    for value, what in ((0 if limit is None else limit, "limit"), (offset, "offset")):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ROWS:
            raise bad(f"{what} must be a whole number from 0 to {MAX_ROWS}")


def storable_text(value: Any, what: str) -> str:
    """``value`` if it is text that may be stored. A lone UTF-16 surrogate (JSON can carry one as
    ``"\\ud800"``) cannot be encoded as UTF-8 for SQLite; a NUL is refused in file names and Python
    source and means nothing in a name, id or tag, so it is refused everywhere."""
    if not isinstance(value, str):
        raise bad(f"{what} must be a string")
    if "\x00" in value:
        raise bad(f"{what} must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad(f"{what} is not valid Unicode text (it has a lone surrogate)") from None
    return value


def optional_text(value: Any, what: str) -> str | None:
    return None if value is None else storable_text(value, what)


def tag_list(tags: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise bad("tags must be a list of strings")
    return tuple(storable_text(t, "a tag") for t in tags)


def json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; 400 for anything else, however deeply it nests."""
    storable_text(text, what)
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise bad(f"{what} must be JSON") from exc
    if not isinstance(value, dict):
        raise bad(f"{what} must be a JSON object")
    return value


def program_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A program's spec as stored. It is answered in plain JSON, which has no NaN or Infinity and
    only valid Unicode, so a spec that could not be answered is refused here instead."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise bad("spec must be a JSON object")
    try:
        json.dumps(spec, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise bad("spec must be plain JSON text (no NaN, Infinity or lone surrogates)") from exc
    return dict(spec)


def timestamp(value: str | datetime | None, what: str) -> str | None:
    """``value`` as stored times are (``format_time``). Naive times are UTC. Years before 1000
    would not sort as text beside the stored four-digit years, and a time that leaves the
    datetime range when moved to UTC cannot be compared at all: both are refused."""
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise bad(f"{what} is not an ISO 8601 time: {value!r}") from exc
    shown = moment.isoformat()
    try:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise bad(f"{what} is out of range once moved to UTC: {shown}") from None
    if moment.year < MIN_YEAR:
        raise bad(f"{what} must not be before the year {MIN_YEAR} (UTC): {shown}")
    return format_time(moment)
