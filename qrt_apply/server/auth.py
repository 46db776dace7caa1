"""Authentication: the ibm_quantum login flow under ``/api`` and the token check of runtime routes.

Flow (reference section 2): ``GET /api/version`` (no auth, must carry ``"api-auth"``) -> ``POST
/api/users/loginWithToken {"apiToken": T}`` -> ``{"id": ACCESS, "ttl", "created", "userId"}`` ->
``GET /api/users/me`` -> runtime URL -> ``GET /api/Network`` -> one hub/group/project
``ibm-q/open/main``. Runtime routes then carry ``X-Access-Token: ACCESS``. The ibm_cloud path sends
``Authorization: apikey T`` (+ ``Service-CRN``, ignored) with the API token itself. The current
client sends ``Authorization: Bearer JWT`` with the IAM token of ``iam.py``.

API tokens belong to the runtime store (hashed there); access tokens are short-lived and hashed in
the server DB. URLs are made from the request's own scheme, host and port. Tokens never appear in a
message or a log line.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qrt_apply import __version__
from qrt_apply.errors import AuthError
from qrt_apply.server.context import call, context
from qrt_apply.server.iam import access_from_jwt
from qrt_apply.server.wire import HGP, field_str, read_json

__all__ = ["AUTH_ROUTES", "authenticate", "base_url", "with_user"]

UserHandler = Callable[[Request, str], Awaitable[Response]]


def base_url(request: Request) -> str:
    """``scheme://host:port`` (plus any ASGI root path) as the client reached this server."""
    return str(request.base_url).rstrip("/")


def _iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


async def authenticate(request: Request) -> str:
    """The user id behind the request's credentials; ``AuthError`` (401) when missing or bad."""
    ctx = context(request)
    access = request.headers.get("x-access-token")
    if access:
        user = await call(ctx.db.user_for_access_token, access)
        if user is None:
            raise AuthError("invalid or expired access token", status=401)
        return user
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() == "apikey" and credential.strip():
            user = await call(ctx.store.user_for_token, credential.strip())
            if user is None:
                raise AuthError("invalid API key", status=401)
            return user
        if scheme.lower() == "bearer" and credential.strip():
            access = access_from_jwt(credential.strip())
            user = await call(ctx.db.user_for_access_token, access) if access else None
            if user is None:
                raise AuthError("invalid or expired bearer token", status=401)
            return user
        raise AuthError(
            "unsupported Authorization scheme (use 'Bearer <IAM token>' or 'apikey <token>')",
            status=401,
        )
    raise AuthError(
        "missing X-Access-Token header (log in at /api/users/loginWithToken)", status=401
    )


def with_user(handler: UserHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a ``handler(request, user_id)`` into an endpoint that authenticates first."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        user = await authenticate(request)
        return await handler(request, user)

    return endpoint


async def version(request: Request) -> Response:
    return JSONResponse({"api-auth": "qrt", "version": __version__, "server": "qrt serve"})


async def login_with_token(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request)
    token = field_str(body, "apiToken", required=True)
    assert token is not None
    user = await call(ctx.store.user_for_token, token)
    if user is None:
        raise AuthError("invalid API token", status=401)
    access, created = await call(ctx.db.issue_access_token, user, ctx.access_ttl)
    return JSONResponse(
        {"id": access, "ttl": ctx.access_ttl, "created": _iso(created), "userId": user}
    )


@with_user
async def users_me(request: Request, user: str) -> Response:
    base = base_url(request)
    return JSONResponse(
        {
            "id": user,
            "userId": user,
            "urls": {"http": f"{base}/api", "services": {"runtime": f"{base}/runtime"}},
        }
    )


@with_user
async def network(request: Request, user: str) -> Response:
    hub, group, project = HGP
    return JSONResponse(
        [
            {
                "name": hub,
                "groups": {
                    group: {
                        "name": group,
                        "projects": {project: {"name": project, "isDefault": True}},
                    }
                },
            }
        ]
    )


AUTH_ROUTES = [
    Route("/version", version, methods=["GET"]),
    Route("/users/loginWithToken", login_with_token, methods=["POST"]),
    Route("/users/me", users_me, methods=["GET"]),
    Route("/Network", network, methods=["GET"]),
]
