"""What route handlers reach through ``request.app.state``: the service, the server DB, settings.

``call`` runs a blocking service method in Starlette's thread pool, so SQLite work and job
submission never stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from qrt_apply.server.serverdb import DEFAULT_ACCESS_TTL, ServerDB

if TYPE_CHECKING:
    from qrt_apply.engine.service import RuntimeService
    from qrt_apply.engine.store import Store

__all__ = ["ServerContext", "call", "context"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class ServerContext:
    service: RuntimeService
    store: Store  # API tokens and users
    db: ServerDB  # access tokens and idempotency records
    access_ttl: int = DEFAULT_ACCESS_TTL
    # serialises Idempotency-Key submissions, so two concurrent retries cannot both create a job
    submit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.qrt
    return ctx


async def call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return await run_in_threadpool(func, *args, **kwargs)
