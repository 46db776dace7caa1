"""The Starlette app of ``qrt serve``: the Qiskit Runtime program REST API over one RuntimeService.

Layout (``shared/reference/runtime-rest-api.md``):

* ``/api/...``: the ibm_quantum auth base (``auth.py``): version, loginWithToken, users/me,
  Network;
* ``/runtime/...``: the runtime base (``routes_programs.py``, ``routes_jobs.py``,
  ``routes_misc.py``); also mounted at ``/experimental/...`` for the ibm_cloud client's ``url``
  escape hatch.
* ``/api/v1/...``: IBM Quantum Platform's v1 API (``routes_v1.py``, ``routes_v1_jobs.py``), also
  at ``/experimental/api/v1/...``, where the current client's ``url`` points; its login services
  at ``/identity/token``, ``/v3/resources/search`` and ``/catalog/api/v1/...`` (``iam.py``).

Every error, whatever raised it, leaves as ``{"error": {"message": ..., "code": status}}``, or on
the v1 API as IBM's ``{"errors": [{"message", "code"}]}``. qrt errors map by class:
``AuthError`` 401, ``NotFoundError`` 404, ``ConflictError`` 409, other input errors 400; only a
bug in the server answers 500 (which the clients retry).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from qrt_apply.errors import AuthError, ConflictError, NotFoundError, QrtError, RuntimeApiError
from qrt_apply.server.auth import AUTH_ROUTES, base_url
from qrt_apply.server.context import ServerContext
from qrt_apply.server.iam import IAM_ROUTES
from qrt_apply.server.routes_jobs import JOB_ROUTES
from qrt_apply.server.routes_misc import MISC_ROUTES
from qrt_apply.server.routes_programs import PROGRAM_ROUTES
from qrt_apply.server.routes_v1 import V1_ROUTES
from qrt_apply.server.routes_v1_jobs import V1_JOB_ROUTES
from qrt_apply.server.serverdb import DEFAULT_ACCESS_TTL, ServerDB
from qrt_apply.server.wire import (
    DEFAULT_MAX_BODY_BYTES,
    BodyLimitMiddleware,
    error_response,
    v1_error_response,
)

if TYPE_CHECKING:
    from qrt_apply.engine.service import RuntimeService
    from qrt_apply.engine.store import Store

__all__ = ["API_V1_ROUTES", "RUNTIME_ROUTES", "create_app", "status_for"]

log = logging.getLogger("qrt.server")

RUNTIME_ROUTES = [*PROGRAM_ROUTES, *JOB_ROUTES, *MISC_ROUTES]
API_V1_ROUTES = [*V1_ROUTES, *V1_JOB_ROUTES]


def status_for(exc: QrtError) -> int:
    """The HTTP status of a qrt error: a 4xx unless the error itself names a server-side status."""
    if isinstance(exc, RuntimeApiError) and exc.status is not None and 400 <= exc.status < 600:
        return exc.status
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 400


def _error(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    path = request.url.path
    if path.startswith(("/api/v1/", "/experimental/api/v1/", "/v3/", "/catalog/")):
        return v1_error_response(status, message, headers)
    return error_response(status, message, headers)


async def _qrt_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QrtError)
    return _error(request, status_for(exc), exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail), headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, "internal server error")


async def _root(request: Request) -> Response:
    base = base_url(request)
    return JSONResponse(
        {
            "service": "qrt serve",
            "auth": f"{base}/api",
            "runtime": f"{base}/runtime",
            "api_v1": f"{base}/api/v1",
        }
    )


def create_app(
    service: RuntimeService,
    store: Store,
    db: ServerDB,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    access_ttl: int = DEFAULT_ACCESS_TTL,
    close_on_shutdown: bool = True,
) -> Starlette:
    """The app serving ``service``; with ``close_on_shutdown`` its lifespan end closes both."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if close_on_shutdown:
            await run_in_threadpool(service.close)
            db.close()

    app = Starlette(
        routes=[
            Route("/", _root, methods=["GET"]),
            Mount("/api", routes=[Mount("/v1", routes=API_V1_ROUTES), *AUTH_ROUTES]),
            Mount("/runtime", routes=RUNTIME_ROUTES),
            Mount(
                "/experimental",
                routes=[Mount("/api/v1", routes=API_V1_ROUTES), *RUNTIME_ROUTES],
            ),
            *IAM_ROUTES,
        ],
        middleware=[Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)],
        exception_handlers={
            HTTPException: _http_error,
            QrtError: _qrt_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.qrt = ServerContext(service=service, store=store, db=db, access_ttl=access_ttl)
    return app
