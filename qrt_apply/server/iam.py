"""IBM Cloud login services as the current qiskit-ibm-runtime client calls them before the v1 API.

Reference: ``shared/reference/iqp-rest-api.md`` (calls 1-4 of a client's construction):

* **IAM** ``POST /identity/token`` (form-encoded ``grant_type=urn:ibm:params:oauth:grant-type:apikey``,
  ``apikey=...``): a qrt serve API token stands in for the IBM Cloud API key. The answer's
  ``access_token`` is JWT-shaped, because ibm-cloud-sdk-core decodes it (signature unchecked) for
  ``exp`` and ``iat`` to schedule its refresh. Its ``jti`` is a server access token
  (``ServerDB``), so revoking a user's tokens ends these too; the JWT carries no signature (``alg:
  none``): the server never trusts its claims, only the ``jti`` it looks up.
* **Global Search** ``POST /v3/resources/search``: the caller's one instance (``instance_crn``),
  with the fields the client requires (``crn``, ``name``, ``service_plan_unique_id``, ``tags``
  and a non-empty ``doc.extensions``).
* **Global Catalog** ``GET /catalog/api/v1/{plan_id}``: the plan's display name and pricing type.

Each user has exactly one instance, whose CRN is derived from the user id (``instance_crn``): it
names the instance, it does not authenticate (the bearer token does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qrt_apply.errors import AuthError, NotFoundError
from qrt_apply.server.context import call, context
from qrt_apply.server.wire import bad_request, read_json, read_text

__all__ = [
    "IAM_ROUTES",
    "IAM_TOKEN_TTL",
    "INSTANCE_NAME",
    "PLAN_ID",
    "access_from_jwt",
    "instance_crn",
    "make_jwt",
]

IAM_TOKEN_TTL = 3600  # seconds, as IBM Cloud IAM answers
PLAN_ID = "qrt-serve-open"
INSTANCE_NAME = "qrt-serve"
_APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
_CRN_NAMESPACE = uuid.UUID("6f1d5f4e-0c2b-4a53-9a43-3f1f0d6c2b7e")  # qrt serve's own namespace
_MAX_JWT = 4096


def instance_crn(user_id: str) -> str:
    """The one instance CRN of ``user_id``: IBM's ``crn:v1:bluemix:public:quantum-computing:
    us-east:a/ACCOUNT:GUID::`` form (region ``us-east``), stable for the user."""
    account = hashlib.sha256(f"qrt-account:{user_id}".encode()).hexdigest()[:32]
    guid = uuid.uuid5(_CRN_NAMESPACE, user_id)
    return f"crn:v1:bluemix:public:quantum-computing:us-east:a/{account}:{guid}::"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(access: str, user_id: str, issued: float, ttl: int) -> str:
    """An unsigned JWT (``alg: none``) carrying ``access`` as its ``jti``, and ``iat``/``exp``."""
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "jti": access,
        "iam_id": user_id,
        "sub": user_id,
        "iat": int(issued),
        "exp": int(issued) + ttl,
        "iss": "qrt-serve",
        "grant_type": _APIKEY_GRANT,
    }
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, claims))
    return ".".join(_b64url(part) for part in parts) + "."


def access_from_jwt(token: str) -> str | None:
    """The ``jti`` of a JWT made by ``make_jwt``; None for anything else."""
    if len(token) > _MAX_JWT or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    access = claims.get("jti") if isinstance(claims, dict) else None
    return access if isinstance(access, str) and access else None


def _iam_error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"errorCode": code, "errorMessage": message}, status_code=status)


async def identity_token(request: Request) -> Response:
    ctx = context(request)
    text = await read_text(request)
    try:
        form = parse_qs(text, keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any token request has
        return _iam_error(400, "BXNIM0109E", "too many form fields")
    grant = form.get("grant_type", [""])[0]
    if grant != _APIKEY_GRANT:
        return _iam_error(400, "BXNIM0109E", f"grant_type must be {_APIKEY_GRANT}")
    apikey = form.get("apikey", [""])[0].strip()
    if not apikey:
        return _iam_error(400, "BXNIM0415E", "apikey is required")
    user = await call(ctx.store.user_for_token, apikey)
    if user is None:
        return _iam_error(400, "BXNIM0415E", "Provided API key could not be found.")
    access, issued = await call(ctx.db.issue_access_token, user, IAM_TOKEN_TTL)
    return JSONResponse(
        {
            "access_token": make_jwt(access, user, issued, IAM_TOKEN_TTL),
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": IAM_TOKEN_TTL,
            "expiration": int(issued) + IAM_TOKEN_TTL,
            "scope": "ibm openid",
        }
    )


async def _bearer_user(request: Request) -> str:
    scheme, _, credential = request.headers.get("authorization", "").strip().partition(" ")
    access = access_from_jwt(credential.strip()) if scheme.lower() == "bearer" else None
    user = await call(context(request).db.user_for_access_token, access) if access else None
    if user is None:
        raise AuthError("missing or invalid bearer token (get one at /identity/token)", status=401)
    return user


async def resources_search(request: Request) -> Response:
    user = await _bearer_user(request)
    body = await read_json(request, allow_empty=True)
    query = body.get("query", "")
    if not isinstance(query, str):
        raise bad_request("'query' must be a string")
    items: list[dict[str, Any]] = []
    # The client asks for "service_name:quantum-computing"; other services have no instances here.
    if not query or "quantum-computing" in query:
        items.append(
            {
                "crn": instance_crn(user),
                "name": INSTANCE_NAME,
                "service_plan_unique_id": PLAN_ID,
                "tags": [],
                "doc": {"extensions": {"virtual_private_endpoints": {}, "qrt_serve": True}},
            }
        )
    return JSONResponse({"items": items, "limit": 100, "search_cursor": None})


async def catalog_entry(request: Request) -> Response:
    await _bearer_user(request)
    plan_id = request.path_params["plan_id"]
    if plan_id != PLAN_ID:
        raise NotFoundError(f"catalog entry {plan_id!r} not found")
    return JSONResponse(
        {
            "id": PLAN_ID,
            "name": "open",
            "kind": "plan",
            "overview_ui": {"en": {"display_name": "Open", "description": "qrt serve"}},
            "metadata": {"pricing": {"type": "free"}},
        }
    )


IAM_ROUTES = [
    Route("/identity/token", identity_token, methods=["POST"]),
    Route("/v3/resources/search", resources_search, methods=["POST"]),
    Route("/catalog/api/v1/{plan_id}", catalog_entry, methods=["GET"]),
]
