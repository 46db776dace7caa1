"""Job routes of the runtime base: submit, get, list, results, interim results, logs, metrics,
cancel, delete, tags.

Quirks honoured (reference sections 3-5): ``POST /jobs`` answers ``{"id", "backend"}`` and honours
an ``Idempotency-Key`` header (same owner and key: the first job's answer again, never a second
job; the same key with a different body: 409); ``GET /jobs/{id}?exclude_params=true`` omits
``params`` (the client re-serialises them with plain ``json.dumps``); lists omit ``params`` and
always carry ``count``; ``interim_results`` is a JSON array of JSON strings, newest first; ``PUT
/jobs/{id}/tags`` answers exactly 204.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from qrt_apply.errors import ConflictError
from qrt_apply.runtime.base import JobInfo
from qrt_apply.server.auth import with_user
from qrt_apply.server.context import call, context
from qrt_apply.server.wire import (
    HGP,
    EncodedJSONResponse,
    bad_request,
    field_bool,
    field_int,
    field_str,
    field_str_list,
    job_to_wire,
    no_content,
    parse_json,
    query_bool,
    query_datetime,
    query_page,
    read_json,
)

__all__ = ["JOB_ROUTES", "JobView", "job_answer", "jobs_answer", "update_job_tags"]

# How an API draws a job object: ``view(job, include_params)``.
JobView = Callable[[JobInfo, bool], dict[str, Any]]

_MAX_IDEMPOTENCY_KEY = 200


def _params_text(body: dict[str, Any]) -> str:
    params = body.get("params", {})
    if params is None:
        params = {}
    if isinstance(params, str):  # already serialised: keep it exactly as received
        decoded = parse_json(params, "'params'")
        if not isinstance(decoded, dict):
            raise bad_request("'params' must be a JSON object")
        return params
    if not isinstance(params, dict):
        raise bad_request("'params' must be a JSON object")
    return json.dumps(params)


async def _submit(request: Request, user: str, body: dict[str, Any]) -> dict[str, Any]:
    program_id = field_str(body, "program_id", required=True)
    assert program_id is not None
    job = await call(
        context(request).service.run,
        user,
        program_id,
        _params_text(body),
        backend=field_str(body, "backend") or None,
        tags=field_str_list(body, "tags"),
        cost=field_int(body, "cost", minimum=1),
        session_id=field_str(body, "session_id") or None,
        start_session=field_bool(body, "start_session", False),
        session_time=field_int(body, "session_time", minimum=1),
        log_level=field_str(body, "log_level") or None,
    )
    return job_to_wire(job)


@with_user
async def submit_job(request: Request, user: str) -> Response:
    body = await read_json(request)
    key = request.headers.get("idempotency-key")
    if not key:
        return JSONResponse(await _submit(request, user, body), status_code=201)
    if len(key) > _MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise bad_request(
            f"Idempotency-Key must be printable and at most {_MAX_IDEMPOTENCY_KEY} chars"
        )
    ctx = context(request)
    request_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    async with ctx.submit_lock:
        record = await call(ctx.db.idempotent_get, user, key)
        if record is not None:
            if record.request_hash != request_hash:
                raise ConflictError(
                    "Idempotency-Key was already used with a different request", status=409
                )
            return JSONResponse(record.response, status_code=200)
        answer = await _submit(request, user, body)
        await call(ctx.db.idempotent_put, user, key, request_hash, answer)
    return JSONResponse(answer, status_code=201)


async def job_answer(request: Request, user: str, view: JobView) -> Response:
    """``GET /jobs/{id}[?exclude_params=true]``, of this API and of the v1 API."""
    include = not query_bool(request, "exclude_params", False)
    job = await call(
        context(request).service.job, user, request.path_params["job_id"], include_params=include
    )
    return EncodedJSONResponse(view(job, include))


async def jobs_answer(request: Request, user: str, view: JobView) -> Response:
    """``GET /jobs`` (filters, paging, sort; params only with ``exclude_params=false``), of this
    API and of the v1 API."""
    limit, offset = query_page(request)
    sort = request.query_params.get("sort", "DESC").upper()
    if sort not in ("ASC", "DESC"):
        raise bad_request("query parameter 'sort' must be ASC or DESC")
    include = not query_bool(request, "exclude_params", True)
    service = context(request).service
    jobs, total = await call(
        service.jobs,
        user,
        limit=limit,
        offset=offset,
        backend=request.query_params.get("backend") or None,
        pending=query_bool(request, "pending", None),
        program_id=request.query_params.get("program") or None,
        tags=tuple(request.query_params.getlist("tags")),
        session_id=request.query_params.get("session_id") or None,
        created_after=query_datetime(request, "created_after"),
        created_before=query_datetime(request, "created_before"),
        descending=sort == "DESC",
    )
    if include:  # rare: the list itself never carries params, so fetch each job
        jobs = [await call(service.job, user, job.id, include_params=True) for job in jobs]
    return EncodedJSONResponse(
        {
            "jobs": [view(job, include) for job in jobs],
            "count": total,
            "limit": limit,
            "offset": offset,
        }
    )


async def update_job_tags(request: Request, user: str) -> Response:
    """``PUT /jobs/{id}/tags``, of this API and of the v1 API."""
    body = await read_json(request)
    if "tags" not in body:
        raise bad_request("'tags' is required")
    tags = field_str_list(body, "tags")
    await call(context(request).service.update_job_tags, user, request.path_params["job_id"], tags)
    return no_content()


def _wire_view(job: JobInfo, include_params: bool) -> dict[str, Any]:
    return job_to_wire(job, include_params=include_params)


@with_user
async def get_job(request: Request, user: str) -> Response:
    return await job_answer(request, user, _wire_view)


@with_user
async def list_jobs(request: Request, user: str) -> Response:
    provider = request.query_params.get("provider")
    if provider and provider != "/".join(HGP):
        limit, offset = query_page(request)
        return JSONResponse({"jobs": [], "count": 0, "limit": limit, "offset": offset})
    return await jobs_answer(request, user, _wire_view)


@with_user
async def job_results(request: Request, user: str) -> Response:
    text = await call(context(request).service.job_result, user, request.path_params["job_id"])
    return PlainTextResponse(text)


@with_user
async def job_interim_results(request: Request, user: str) -> Response:
    items = await call(
        context(request).service.job_interim_results, user, request.path_params["job_id"]
    )
    return JSONResponse(list(reversed(items)))  # the real API answered newest first


@with_user
async def job_logs(request: Request, user: str) -> Response:
    text = await call(context(request).service.job_logs, user, request.path_params["job_id"])
    return PlainTextResponse(text)


@with_user
async def job_metrics(request: Request, user: str) -> Response:
    metrics = await call(context(request).service.job_metrics, user, request.path_params["job_id"])
    return JSONResponse(metrics)


@with_user
async def cancel_job(request: Request, user: str) -> Response:
    await call(context(request).service.cancel_job, user, request.path_params["job_id"])
    return no_content()


@with_user
async def delete_job(request: Request, user: str) -> Response:
    await call(context(request).service.delete_job, user, request.path_params["job_id"])
    return no_content()


update_tags = with_user(update_job_tags)


JOB_ROUTES = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs", submit_job, methods=["POST"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/jobs/{job_id}/results", job_results, methods=["GET"]),
    Route("/jobs/{job_id}/interim_results", job_interim_results, methods=["GET"]),
    Route("/jobs/{job_id}/logs", job_logs, methods=["GET"]),
    Route("/jobs/{job_id}/metrics", job_metrics, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/tags", update_tags, methods=["PUT"]),
]
