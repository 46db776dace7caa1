"""Program routes of the runtime base: list, upload, get, update data/metadata, visibility, delete.

Quirks honoured (reference section 3): ``POST /programs`` carries the source base64-encoded in
``data`` and ``cost`` as the max execution time; ``GET /programs/{id}`` returns ``data`` as plain
text, to the owner only; ``PUT /programs/{id}/data`` is the bare base64 text (with a stale
Content-Type, ignored); the list always answers ``count`` so the client's paging loop ends.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qrt_apply.server.auth import with_user
from qrt_apply.server.context import call, context
from qrt_apply.server.wire import (
    bad_request,
    field_bool,
    field_dict,
    field_int,
    field_str,
    no_content,
    parse_json,
    program_to_wire,
    query_page,
    read_json,
    read_text,
)

__all__ = ["PROGRAM_ROUTES", "decode_source"]


def decode_source(data: str) -> str:
    """The program source from its base64 text (whitespace ignored); 400 unless UTF-8 text."""
    compact = "".join(data.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("program 'data' must be base64 text") from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("program 'data' must be base64 of UTF-8 source text") from None
    if not source.strip():
        raise bad_request("program source is empty")
    return source


@with_user
async def list_programs(request: Request, user: str) -> Response:
    limit, offset = query_page(request)
    programs, total = await call(
        context(request).service.programs, user, limit=limit, offset=offset
    )
    return JSONResponse(
        {
            "programs": [program_to_wire(p) for p in programs],
            "count": total,
            "limit": limit,
            "offset": offset,
        }
    )


@with_user
async def upload_program(request: Request, user: str) -> Response:
    body = await read_json(request)
    name = field_str(body, "name", required=True)
    data = field_str(body, "data", required=True)
    assert name is not None and data is not None
    cost = field_int(body, "cost", minimum=1)
    if cost is None:
        raise bad_request("'cost' (the program's max_execution_time in seconds) is required")
    program = await call(
        context(request).service.upload_program,
        user,
        name=name,
        source=decode_source(data),
        description=field_str(body, "description") or "",
        max_execution_time=cost,
        spec=field_dict(body, "spec"),
        is_public=field_bool(body, "is_public", False),
    )
    return JSONResponse(program_to_wire(program), status_code=201)


@with_user
async def get_program(request: Request, user: str) -> Response:
    program = await call(context(request).service.program, user, request.path_params["program_id"])
    return JSONResponse(program_to_wire(program, with_data=True))


@with_user
async def update_program_data(request: Request, user: str) -> Response:
    text = (await read_text(request)).strip()
    if text.startswith('"'):  # a JSON string, as a careful client would send it
        text = parse_json(text, "request body (the program's base64 text)")
        if not isinstance(text, str):
            raise bad_request("request body must be the program's base64 text")
    await call(
        context(request).service.update_program_data,
        user,
        request.path_params["program_id"],
        decode_source(text),
    )
    return no_content()


@with_user
async def update_program_metadata(request: Request, user: str) -> Response:
    body = await read_json(request, allow_empty=True)
    name = field_str(body, "name")
    if name is not None and not name.strip():
        raise bad_request("'name' must not be empty")
    await call(
        context(request).service.update_program_metadata,
        user,
        request.path_params["program_id"],
        name=name,
        description=field_str(body, "description"),
        max_execution_time=field_int(body, "cost", minimum=1),
        spec=field_dict(body, "spec"),
    )
    return no_content()


async def _set_visibility(request: Request, user: str, public: bool) -> Response:
    await call(
        context(request).service.set_program_visibility,
        user,
        request.path_params["program_id"],
        public,
    )
    return no_content()


@with_user
async def make_public(request: Request, user: str) -> Response:
    return await _set_visibility(request, user, True)


@with_user
async def make_private(request: Request, user: str) -> Response:
    return await _set_visibility(request, user, False)


@with_user
async def delete_program(request: Request, user: str) -> Response:
    await call(context(request).service.delete_program, user, request.path_params["program_id"])
    return no_content()


PROGRAM_ROUTES = [
    Route("/programs", list_programs, methods=["GET"]),
    Route("/programs", upload_program, methods=["POST"]),
    Route("/programs/{program_id}", get_program, methods=["GET"]),
    Route("/programs/{program_id}", update_program_metadata, methods=["PATCH"]),
    Route("/programs/{program_id}", delete_program, methods=["DELETE"]),
    Route("/programs/{program_id}/data", update_program_data, methods=["PUT"]),
    Route("/programs/{program_id}/public", make_public, methods=["PUT"]),
    Route("/programs/{program_id}/private", make_private, methods=["PUT"]),
]
