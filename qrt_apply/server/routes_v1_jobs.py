"""Job routes of the IBM Quantum Platform v1 API (``/api/v1/jobs``), over the same service and
engine as the program API: a v1 job is an ordinary ``sampler``/``estimator`` job of the store,
run by the warm workers.

Shapes from ``shared/reference/iqp-rest-api.md``:

* ``POST /jobs {"program_id", "backend", "params", "session_id"?, "tags"?, "log_level"?, "cost"?,
  "private"?, ...}`` -> 200 ``{"id", "backend", "session_id", "private"}``. ``params`` are the
  client's RuntimeEncoder JSON (QPY circuits, ndarrays), decoded and checked as a run would check
  them (400 when they could not run), then kept as sent; with ``support_qiskit: true``
  the worker writes the result as a RuntimeEncoder ``PrimitiveResult``, which ``GET
  /jobs/{id}/results`` answers as text. A ``session_id`` must name an open session of the caller.
* ``GET /jobs/{id}[?exclude_params=true]``: ``state.status`` is ``Queued``, ``Running``,
  ``Completed``, ``Failed`` or ``Cancelled`` (a job stopped for running too long is
  ``Cancelled`` with ``reason_code`` 1305, as IBM reports it, which the client shows as ERROR);
  ``program.id`` selects the client's decoder.
* ``GET /jobs?limit&offset&backend&pending&program&tags&session_id&created_after&created_before
  &sort`` -> ``{"jobs", "count", "limit", "offset"}``; ``count`` is the exact number of matches.
* ``POST /jobs/{id}/cancel``, ``DELETE /jobs/{id}``, ``PUT /jobs/{id}/tags``: 204. ``GET
  /jobs/{id}/logs`` (text), ``/metrics`` (``timestamps`` and ``usage``).

Another user's job or session is 404, exactly like one that does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from qrt_apply.engine.executor import is_builtin
from qrt_apply.errors import ConflictError, RuntimeApiError
from qrt_apply.runtime.base import JobInfo
from qrt_apply.server.context import call, context
from qrt_apply.server.routes_jobs import JobView, job_answer, jobs_answer, update_job_tags
from qrt_apply.server.routes_v1 import v1_user
from qrt_apply.server.wire import (
    bad_request,
    field_bool,
    field_int,
    field_str,
    field_str_list,
    no_content,
    read_json,
)

__all__ = ["V1_JOB_ROUTES", "v1_job"]

_STATES = {
    "QUEUED": "Queued",
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
}
_RAN_TOO_LONG = "RAN TOO LONG"
_RAN_TOO_LONG_CODE = 1305


def v1_job(job: JobInfo, user: str, *, include_params: bool = False) -> dict[str, Any]:
    """A job object as the v1 API answers it."""
    status = _STATES.get(job.status, job.status.capitalize())
    state: dict[str, Any] = {"status": status}
    if job.reason == _RAN_TOO_LONG:
        state["reason"] = "Ran too long"
        state["reason_code"] = _RAN_TOO_LONG_CODE
    elif job.reason:
        state["reason"] = job.reason
    out: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": status,
        "program": {"id": job.program_id},
        "created": job.created,
        "session_id": job.session_id,
        "tags": list(job.tags),
        "private": False,
        "runtime": "",
        "user_id": user,
        "timestamps": {"created": job.created, "running": job.started, "finished": job.ended},
    }
    if include_params:
        out["params"] = dict(job.params) if job.params is not None else {}
    return out


def _view_for(user: str) -> JobView:
    """How the v1 API draws ``user``'s jobs."""

    def view(job: JobInfo, include_params: bool) -> dict[str, Any]:
        return v1_job(job, user, include_params=include_params)

    return view


def _check_inputs(program_id: str, params_text: str, backend: str) -> None:
    """400 for inputs the job could not run with (undecodable QPY, malformed PUBs, wrong
    parameter counts, ...), found before the job exists, as the platform refuses them."""
    from qrt_apply.engine.primitives import check_builtin_inputs
    from qrt_apply.runtime import encoding

    try:
        check_builtin_inputs(program_id, encoding.loads(params_text), backend)
    except RuntimeApiError:
        raise
    except Exception as exc:  # whatever qiskit raises on a hostile circuit is the caller's
        raise bad_request(f"invalid job inputs: {type(exc).__name__}: {exc}") from None


def _params_text(body: dict[str, Any]) -> str:
    params = body.get("params")
    if not isinstance(params, dict):
        raise bad_request("'params' must be a JSON object")
    if not isinstance(params.get("pubs"), list) or not params["pubs"]:
        raise bad_request("'params.pubs' must be a non-empty list of PUBs")
    return json.dumps(params)


async def submit_job(request: Request) -> Response:
    user = await v1_user(request)
    body = await read_json(request)
    program_id = field_str(body, "program_id", required=True)
    assert program_id is not None
    if not is_builtin(program_id):
        raise bad_request(f"program {program_id!r} is not available here (sampler, estimator)")
    backend = field_str(body, "backend", required=True)
    assert backend is not None
    params = _params_text(body)
    session_id = field_str(body, "session_id") or None
    service = context(request).service
    if session_id is not None:
        session = await call(service.session, user, session_id)  # 404 unless the caller's
        if session.closed is not None:
            raise ConflictError(f"session {session_id} is closed", status=409)
    field_bool(body, "private", False)
    await call(_check_inputs, program_id, params, backend)
    job = await call(
        service.run,
        user,
        program_id,
        params,
        backend=backend,
        tags=field_str_list(body, "tags"),
        cost=field_int(body, "cost", minimum=1),
        session_id=session_id,
        log_level=field_str(body, "log_level") or None,
    )
    return JSONResponse(
        {"id": job.id, "backend": job.backend, "session_id": job.session_id, "private": False}
    )


async def get_job(request: Request) -> Response:
    user = await v1_user(request)
    return await job_answer(request, user, _view_for(user))


async def list_jobs(request: Request) -> Response:
    user = await v1_user(request)
    return await jobs_answer(request, user, _view_for(user))


async def job_results(request: Request) -> Response:
    user = await v1_user(request)
    text = await call(context(request).service.job_result, user, request.path_params["job_id"])
    return PlainTextResponse(text)


async def job_logs(request: Request) -> Response:
    user = await v1_user(request)
    text = await call(context(request).service.job_logs, user, request.path_params["job_id"])
    return PlainTextResponse(text)


async def job_metrics(request: Request) -> Response:
    user = await v1_user(request)
    metrics = await call(context(request).service.job_metrics, user, request.path_params["job_id"])
    usage = metrics.setdefault("usage", {})
    usage.update(status="final" if metrics["timestamps"]["finished"] else "pending")
    usage.setdefault("qpu_charge_time_seconds", 0)
    return JSONResponse(metrics)


async def cancel_job(request: Request) -> Response:
    user = await v1_user(request)
    await call(context(request).service.cancel_job, user, request.path_params["job_id"])
    return no_content()


async def delete_job(request: Request) -> Response:
    user = await v1_user(request)
    await call(context(request).service.delete_job, user, request.path_params["job_id"])
    return no_content()


async def update_tags(request: Request) -> Response:
    return await update_job_tags(request, await v1_user(request))


V1_JOB_ROUTES = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs", submit_job, methods=["POST"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/jobs/{job_id}/results", job_results, methods=["GET"]),
    Route("/jobs/{job_id}/logs", job_logs, methods=["GET"]),
    Route("/jobs/{job_id}/metrics", job_metrics, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/tags", update_tags, methods=["PUT"]),
]
