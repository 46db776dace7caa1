"""Backend and session routes of the runtime base.

Backends (reference section 3): the list is ``{"devices": [names]}``; ``configuration`` carries
``online_date`` and ``max_experiments`` (the client drops or crashes on a backend without them) and
``status`` says ``"active"``. ``properties``, ``pulse_defaults`` and ``defaults`` answer ``{}``,
which the client reads as "none available". Sessions: 0.11.3 closes with ``DELETE
/sessions/{id}/close``, 0.12.2 with ``PATCH /sessions/{id} {"accepting_jobs": false}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qrt_apply.engine import backends
from qrt_apply.errors import NotFoundError
from qrt_apply.server.auth import with_user
from qrt_apply.server.context import call, context
from qrt_apply.server.wire import field_bool, no_content, read_json

__all__ = ["MISC_ROUTES", "known_backend"]


def known_backend(name: str) -> str:
    """``name``, once it names a backend of the server; 404 otherwise (either API)."""
    try:
        backends.canonical_name(name)
    except (KeyError, ValueError):
        raise NotFoundError(f"backend {name!r} not found", status=404) from None
    return name


@with_user
async def list_backends(request: Request, user: str) -> Response:
    infos = await call(context(request).service.backends)
    return JSONResponse({"devices": [info.name for info in infos]})


@with_user
async def backend_configuration(request: Request, user: str) -> Response:
    name = known_backend(request.path_params["name"])
    config: dict[str, Any] = await call(backends.configuration, name)
    return JSONResponse(config)


@with_user
async def backend_status(request: Request, user: str) -> Response:
    name = known_backend(request.path_params["name"])
    return JSONResponse(await call(backends.status, name))


@with_user
async def backend_empty(request: Request, user: str) -> Response:
    known_backend(request.path_params["name"])
    return JSONResponse({})


@with_user
async def close_session(request: Request, user: str) -> Response:
    await call(context(request).service.close_session, user, request.path_params["session_id"])
    return no_content()


@with_user
async def patch_session(request: Request, user: str) -> Response:
    body = await read_json(request, allow_empty=True)
    if not field_bool(body, "accepting_jobs", True):
        await call(context(request).service.close_session, user, request.path_params["session_id"])
    return no_content()


MISC_ROUTES = [
    Route("/backends", list_backends, methods=["GET"]),
    Route("/backends/{name}/configuration", backend_configuration, methods=["GET"]),
    Route("/backends/{name}/status", backend_status, methods=["GET"]),
    Route("/backends/{name}/properties", backend_empty, methods=["GET"]),
    Route("/backends/{name}/pulse_defaults", backend_empty, methods=["GET"]),
    Route("/backends/{name}/defaults", backend_empty, methods=["GET"]),
    Route("/sessions/{session_id}/close", close_session, methods=["DELETE"]),
    Route("/sessions/{session_id}", patch_session, methods=["PATCH"]),
]
