"""Wire helpers of the HTTP server: error bodies, body reading, query/field parsing, JSON shapes.

Everything here follows ``shared/reference/runtime-rest-api.md``: JSON bodies are parsed whatever
the ``Content-Type`` header says (the old clients send none, or a stale
``application/octet-stream``), every error is ``{"error": {"message": ..., "code": ...}}``, and bad
input is always a 4xx (the old clients retry 5xx, even on ``POST /jobs``). Input problems raise
``RuntimeApiError(status=400)``; the app's exception handlers turn every ``QrtError`` into the
error body.

Every JSON text a client sends goes through ``parse_json``: at most ``MAX_JSON_DEPTH`` levels deep
and only valid Unicode strings, so no later ``json.dumps``, SQLite bind or UTF-8 answer can fail on
it. Range checks of the values themselves (seconds, paging, times, text) are the service's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qrt_apply.errors import RuntimeApiError
from qrt_apply.runtime.base import JobInfo, ProgramInfo

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HGP",
    "MAX_JSON_DEPTH",
    "MAX_PAGE",
    "BodyLimitMiddleware",
    "EncodedJSONResponse",
    "bad_request",
    "error_response",
    "field_bool",
    "field_dict",
    "field_int",
    "field_str",
    "field_str_list",
    "job_to_wire",
    "no_content",
    "parse_json",
    "program_to_wire",
    "query_bool",
    "query_datetime",
    "query_int",
    "query_page",
    "read_json",
    "read_text",
    "v1_error_response",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_PAGE = 1000  # largest page a list answers; the clients page on with ``count``
HGP = ("ibm-q", "open", "main")  # the one hub/group/project every user belongs to
# Deepest JSON nesting accepted: real bodies (PUBs, observables, specs) nest a handful of levels,
# and the bound keeps every later recursive walk (json.dumps, the job's decoder) far from the stack
# limit.
MAX_JSON_DEPTH = 64


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The error body both old clients parse: ``{"error": {"message", "code"}}``."""
    # A message quoting client text must not turn an error answer into a UTF-8 encoding failure.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"error": {"message": message, "code": status}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def v1_error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error body of IBM Quantum Platform's v1 API: ``{"errors": [{"message", "code"}]}``."""
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"errors": [{"message": message, "code": status}], "status_code": status}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def bad_request(message: str) -> RuntimeApiError:
    return RuntimeApiError(message, status=400)


def no_content() -> Response:
    return Response(status_code=204)


class EncodedJSONResponse(JSONResponse):
    """JSON rendered with the RuntimeEncoder, for bodies that may carry ``__type__`` values."""

    def render(self, content: Any) -> bytes:
        from qrt_apply.runtime.encoding import dumps

        return dumps(content).encode("utf-8")


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 (early by Content-Length, else while reading)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    message = (
                        f"request body larger than {self.max_bytes} bytes"
                        if declared > 0
                        else "invalid Content-Length"
                    )
                    response = error_response(413 if declared > 0 else 400, message)
                    await response(scope, receive, send)
                    return
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


async def read_text(request: Request) -> str:
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("request body is not UTF-8 text") from None


def parse_json(text: str, what: str = "request body") -> Any:
    """``text`` as JSON, or 400: invalid, deeper than ``MAX_JSON_DEPTH``, or with a string that
    is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which UTF-8 cannot encode).

    Every step runs at C speed, so that a hostile 10 MB body costs about what parsing it does."""
    if not _is_unicode(text):
        raise bad_request(f"{what} is not valid Unicode text (it has a lone surrogate)")
    if _nested_too_deep(text):
        raise _too_deep(what)
    try:
        value = json.loads(text)
    except RecursionError:  # no JSON, yet deep enough to exhaust the parser ("[" * 5000)
        raise _too_deep(what) from None
    except ValueError as exc:
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    # Only a \uD800-\uDFFF escape can put a lone surrogate into a string; writing the value back
    # as UTF-8 finds one anywhere in it (the depth is bounded by now, so this cannot recurse far).
    if _SURROGATE_ESCAPE.search(text) and not _is_unicode(json.dumps(value, ensure_ascii=False)):
        raise bad_request(f"{what} has a string with a lone surrogate (not valid Unicode)")
    return value


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(what: str) -> RuntimeApiError:
    return bad_request(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _nested_too_deep(text: str) -> bool:
    """Whether JSON ``text`` nests deeper than ``MAX_JSON_DEPTH``, found before it is parsed. Of
    its brackets outside strings, each pass drops the innermost pairs: one level per pass."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).translate(_SQUARE)
    for _ in range(MAX_JSON_DEPTH):
        inner = brackets.replace("[]", "")
        if inner == brackets:
            return False  # all gone within the bound, or not JSON (json.loads says so)
        brackets = inner
    return bool(brackets)


async def read_json(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object (see ``parse_json``), ignoring Content-Type. An empty body is
    ``{}`` if allowed."""
    text = await read_text(request)
    if not text.strip():
        if allow_empty:
            return {}
        raise bad_request("request body must be a JSON object")
    value = parse_json(text)
    if not isinstance(value, dict):
        raise bad_request("request body must be a JSON object")
    return value


# -- query parameters -------------------------------------------------------------------------


def query_int(
    request: Request, name: str, default: int | None, *, maximum: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be an integer") from None
    if value < 0:
        raise bad_request(f"query parameter {name!r} must not be negative")
    if maximum is not None:
        value = min(value, maximum)
    return value


def query_page(request: Request) -> tuple[int, int]:
    """A listing's ``limit`` (at most ``MAX_PAGE``, the default) and ``offset`` (default 0)."""
    limit = query_int(request, "limit", MAX_PAGE, maximum=MAX_PAGE)
    offset = query_int(request, "offset", 0)
    assert limit is not None and offset is not None  # the defaults are not None
    return limit, offset


def query_bool(request: Request, name: str, default: bool | None) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_request(f"query parameter {name!r} must be true or false")


def query_datetime(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time, aware (a naive one is taken as UTC). Its range is checked by the service,
    which moves it to UTC; doing that here could overflow (``9999-12-31T23:59-01:00``)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise bad_request(f"query parameter {name!r} must be an ISO 8601 date-time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- body fields --------------------------------------------------------------------------------


def field_str(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{key!r} must be a string")
    if required and not value.strip():
        raise bad_request(f"{key!r} must not be empty")
    return value


def field_int(body: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_request(f"{key!r} must be an integer")
    if minimum is not None and value < minimum:
        raise bad_request(f"{key!r} must be at least {minimum}")
    return value


def field_bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key!r} must be true or false")
    return value


def field_dict(body: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{key!r} must be a JSON object")
    return value


def field_str_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise bad_request(f"{key!r} must be a list of strings")
    return list(value)


# -- response shapes ---------------------------------------------------------------------------


def program_to_wire(program: ProgramInfo, *, with_data: bool = False) -> dict[str, Any]:
    """A program object as the real API sent it; ``data`` (plain text) only when asked and known."""
    out: dict[str, Any] = {
        "id": program.id,
        "name": program.name,
        "description": program.description,
        "cost": program.max_execution_time,
        "is_public": program.is_public,
        "spec": dict(program.spec),
        "creation_date": program.creation_date,
        "update_date": program.update_date,
    }
    if with_data and program.data:
        out["data"] = program.data
    if program.data_digest:  # qrt's extension: lets a client skip GETs of unchanged sources
        out["data_digest"] = program.data_digest
    return out


def job_to_wire(job: JobInfo, *, include_params: bool = False) -> dict[str, Any]:
    """A job object: ``state.status`` is what the clients read; the rest mirrors the real API."""
    state: dict[str, Any] = {"status": job.status}
    if job.reason:
        state["reason"] = job.reason
    hub, group, project = HGP
    out: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "state": state,
        "program": {"id": job.program_id},
        "backend": job.backend,
        "created": job.created,
        "started": job.started,
        "ended": job.ended,
        "session_id": job.session_id,
        "tags": list(job.tags),
        "hub": hub,
        "group": group,
        "project": project,
    }
    if include_params:
        out["params"] = dict(job.params) if job.params is not None else {}
    return out
