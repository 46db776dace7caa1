"""``HttpRuntime``: the Runtime protocol over the Qiskit Runtime REST API (reference §1-§4).

The client never opens a socket itself: it sends through an ``httpx.Client`` (injected, or made
from the account's ``verify``/``proxies``), wrapped in :class:`~qrt_apply.runtime.http_wire.Wire`
for retries and error mapping; :mod:`~qrt_apply.runtime.http_auth` logs in on the first call.

Wire choices worth knowing:

* Listing pages with ``limit``/``offset`` until the server's ``count`` is reached (or a page comes
  back empty, so a server that lies about ``count`` cannot loop us forever).
* ``upload_program`` sends the source base64-encoded in ``data``; ``update_program`` sends ``PUT
  /programs/{id}/data`` (base64 text, ``application/octet-stream``) and then ``PATCH`` with the
  metadata keys that are not None (``max_execution_time`` travels as ``cost``).
* ``run`` encodes ``inputs`` with :func:`qrt_apply.runtime.encoding.dumps`. Every submission
  carries an idempotency tag ``qrt-submit:<hex>`` in the job's ``tags`` (a caller may supply its
  own such tag, e.g. one journalled beforehand) and the same value as the ``Idempotency-Key``
  header. After an ambiguous failure (timeout, 5xx, broken connection) the client looks the job up
  by that tag before re-sending, and adopts it when it exists, so a retry never makes a second job.
* Interim results arrive newest first on the wire; :meth:`HttpRuntime.job_interim_results` returns
  them oldest first, like every Runtime.
* ``job()`` asks for the job with its ``params`` (as the embedded runtime returns them: the JSON
  the inputs were sent as, ``__type__`` objects left encoded); listings come without them.
* ``target`` is the account as configured (channel, url, instance) -- known without any network
  call, never the token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from qrt_apply import __version__
from qrt_apply.errors import AuthError, RuntimeApiError
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, BackendInfo, JobInfo, ProgramInfo, Target
from qrt_apply.runtime.http_auth import Connection, connect
from qrt_apply.runtime.http_parse import parse_backend, parse_interim, parse_job, parse_program
from qrt_apply.runtime.http_wire import RetryPolicy, Wire

__all__ = ["SUBMIT_TAG_PREFIX", "HttpRuntime", "http_options", "new_submit_tag"]

DEFAULT_CONNECT = 5.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=DEFAULT_CONNECT)
# Asked for per page of a listing. The old client asks for 20; a server that answers fewer (it
# caps its pages) is paged on by its ``count`` all the same.
LIST_PAGE = 100
T = TypeVar("T")


def http_options(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``HttpRuntime`` keyword arguments from qrt.yaml's ``http:`` mapping (its shape is checked
    by the project schema): ``timeout``, ``submit_timeout`` (seconds), ``retries`` (attempts per
    call), ``backoff``, ``backoff_max`` and ``retry_time`` (seconds; see ``RetryPolicy``). Keys
    left out keep their defaults."""
    given = dict(settings or {})
    default = RetryPolicy()
    options: dict[str, Any] = {
        "retry": RetryPolicy(
            max_attempts=int(given.get("retries", default.max_attempts)),
            base_delay=float(given.get("backoff", default.base_delay)),
            max_delay=float(given.get("backoff_max", default.max_delay)),
            total_time=float(given.get("retry_time", default.total_time)),
        )
    }
    if "timeout" in given:
        seconds = float(given["timeout"])
        options["timeout"] = httpx.Timeout(seconds, connect=min(seconds, DEFAULT_CONNECT))
    if "submit_timeout" in given:
        options["submit_timeout"] = float(given["submit_timeout"])
    return options


def new_submit_tag() -> str:
    """A fresh idempotency tag for one submission."""
    return SUBMIT_TAG_PREFIX + uuid.uuid4().hex


def _make_client(account: Account, timeout: httpx.Timeout) -> httpx.Client:
    mounts: dict[str, httpx.BaseTransport | None] = {}
    urls = (account.proxies or {}).get("urls")
    if isinstance(urls, Mapping):
        for scheme, proxy in urls.items():
            key = scheme if scheme.endswith("://") else f"{scheme}://"
            mounts[key] = httpx.HTTPTransport(proxy=str(proxy), verify=account.verify)
    return httpx.Client(verify=account.verify, timeout=timeout, mounts=mounts or None)


class HttpRuntime:
    """A Runtime behind the Qiskit Runtime REST API (see the module docstring).

    ``client``: the ``httpx.Client`` to send through (tests pass one with a mock transport); it
    stays the caller's, ``close()`` closes only a client made here. ``retry``, ``sleep`` and
    ``clock`` shape the retries; ``timeout`` applies to every call but ``POST /jobs``, which gets
    ``submit_timeout`` seconds to answer."""

    def __init__(
        self,
        account: Account,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        submit_timeout: float = 120.0,
    ) -> None:
        account.validate()
        self.account = account
        self._own_client = client is None
        self._client = client if client is not None else _make_client(account, timeout)
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._submit_timeout = submit_timeout
        self._wire = Wire(
            self._client, policy=retry, sleep=sleep, clock=clock, secrets=self._secrets
        )

    def __repr__(self) -> str:
        return f"HttpRuntime({self.target!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        conn = self._conn
        return (self.account.token, *(conn.secrets if conn else ()))

    def _connection(self, *, stale: Connection | None = None) -> Connection:
        """The logged-in connection; ``stale``: log in again unless another thread already has."""
        with self._lock:
            if self._conn is None or (stale is not None and self._conn is stale):
                self._conn = connect(self._wire, self.account)
            return self._conn

    # Query parameters of every job listing (a subclass may leave the inputs out, say).
    _job_list_params: Mapping[str, str] = {}

    @staticmethod
    def _parse_job(data: Any) -> JobInfo:
        return parse_job(data)

    @property
    def _relogin_on_401(self) -> bool:
        """Whether a 401 may mean a stale login, worth one new login and one retry."""
        return self.account.channel == "ibm_quantum"

    def _url(self, path: str) -> str:
        return self._connection().base_url + path

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"X-Qx-Client-Application": f"qrt/{__version__}"}
        headers.update(self._connection().headers)
        headers.update(extra or {})
        return headers

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A runtime call; where a 401 may mean a stale login (``_relogin_on_401``) it logs in
        again once. A failing login itself is not repeated."""
        extra = kwargs.pop("headers", None)
        conn = self._connection()
        url, headers = self._url(path), self._headers(extra)
        try:
            return self._wire.request(method, url, headers=headers, **kwargs)
        except AuthError as exc:
            if exc.status != 401 or not self._relogin_on_401:
                raise
        self._connection(stale=conn)
        return self._wire.request(method, self._url(path), headers=self._headers(extra), **kwargs)

    def _once(
        self, method: str, path: str, recover: Callable[[], T | None] | None, **kwargs: Any
    ) -> httpx.Response | T:
        """A call that must take effect at most once (see ``Wire.request_once``; ``recover`` None:
        no way to check, so not re-sent after an ambiguous failure); a 401 is answered before
        anything happens, so it is sent again after a new login."""
        extra = kwargs.pop("headers", None)
        conn = self._connection()
        url, headers = self._url(path), self._headers(extra)
        try:
            return self._wire.request_once(method, url, recover, headers=headers, **kwargs)
        except AuthError as exc:
            if exc.status != 401 or not self._relogin_on_401:
                raise
        self._connection(stale=conn)
        url, headers = self._url(path), self._headers(extra)
        return self._wire.request_once(method, url, recover, headers=headers, **kwargs)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RuntimeApiError(
                f"{method} {self._url(path)} answered HTTP {response.status_code} with a body "
                "that is not JSON",
                status=response.status_code,
            ) from None

    def _pages(
        self, path: str, key: str, params: dict[str, Any], limit: int | None, skip: int, page: int
    ) -> Iterator[dict[str, Any]]:
        """Items of a paged listing, from ``skip`` on, at most ``limit`` of them."""
        got = 0
        while limit is None or got < limit:
            want = page if limit is None else min(page, limit - got)
            query = [*params.items(), ("limit", want)]
            if skip + got:
                query.append(("offset", skip + got))
            body = self._json("GET", path, params=_flatten(query))
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise RuntimeApiError(f"GET {self._url(path)}: the answer has no {key!r} list")
            yield from items[:want]
            got += min(len(items), want)
            count = body.get("count")
            if not items or (isinstance(count, int) and skip + got >= count):
                return

    # -- the Runtime protocol -------------------------------------------------------------------

    @property
    def target(self) -> Target:
        return self.account.target

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
        conn = self._connection()
        params = {"provider": conn.instance} if self.account.channel == "ibm_quantum" else None
        listed = self._json("GET", "/backends", params=params).get("devices") or []
        infos = []
        for name in listed:
            if names is not None and name not in names:
                infos.append(parse_backend(str(name), {}, {}))  # two requests saved
                continue
            config = self._json("GET", f"/backends/{name}/configuration")
            try:
                status = self._json("GET", f"/backends/{name}/status")
            except RuntimeApiError:
                status = {}
            infos.append(parse_backend(str(name), config, status))
        return infos

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]:
        return [
            parse_program(p)
            for p in self._pages("/programs", "programs", {}, limit, skip, LIST_PAGE)
        ]

    def program(self, program_id: str) -> ProgramInfo:
        return parse_program(self._json("GET", f"/programs/{program_id}"))

    def upload_program(self, data: str, metadata: Mapping[str, Any]) -> str:
        name = metadata.get("name")
        if not name or not metadata.get("max_execution_time"):
            raise RuntimeApiError("upload_program needs metadata 'name' and 'max_execution_time'")
        body: dict[str, Any] = {
            "name": name,
            "data": base64.b64encode(data.encode("utf-8")).decode("ascii"),
            "cost": int(metadata["max_execution_time"]),
            "description": metadata.get("description") or "",
            "is_public": bool(metadata.get("is_public", False)),
        }
        if metadata.get("spec") is not None:
            body["spec"] = dict(metadata["spec"])

        def already_uploaded() -> str | None:
            for program in self.programs():
                if program.name == name and self.program(program.id).data == data:
                    return program.id
            return None

        outcome = self._once("POST", "/programs", already_uploaded, json_body=body)
        if isinstance(outcome, str):
            return outcome
        answer = outcome.json()
        return str(answer["id"])

    def update_program(
        self,
        program_id: str,
        data: str | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        if data is not None:
            encoded = base64.b64encode(data.encode("utf-8")).decode("ascii")
            self._call(
                "PUT",
                f"/programs/{program_id}/data",
                content=encoded,
                headers={"Content-Type": "application/octet-stream"},
            )
        patch: dict[str, Any] = {}
        if name is not None:
            patch["name"] = name
        if description is not None:
            patch["description"] = description
        if max_execution_time is not None:
            patch["cost"] = int(max_execution_time)
        if spec is not None:
            patch["spec"] = dict(spec)
        if patch:
            self._call("PATCH", f"/programs/{program_id}", json_body=patch)

    def set_program_visibility(self, program_id: str, public: bool) -> None:
        self._call("PUT", f"/programs/{program_id}/{'public' if public else 'private'}")

    def delete_program(self, program_id: str) -> None:
        self._call("DELETE", f"/programs/{program_id}", ok_after_ambiguous=(404,))

    def run(
        self,
        program_id: str,
        inputs: Mapping[str, Any],
        *,
        backend: str | None = None,
        max_execution_time: int | None = None,
        log_level: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        start_session: bool = False,
    ) -> JobInfo:
        from qrt_apply.runtime.encoding import dumps

        submit_tag = next((t for t in tags if t.startswith(SUBMIT_TAG_PREFIX)), new_submit_tag())
        all_tags = list(dict.fromkeys([*tags, submit_tag]))
        body: dict[str, Any] = {"program_id": program_id, "params": json.loads(dumps(dict(inputs)))}
        optional = {
            "backend": backend,
            "cost": max_execution_time,
            "log_level": log_level,
            "session_id": session_id,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body["tags"] = all_tags
        if start_session:
            body["start_session"] = True
        conn = self._connection()
        if self.account.channel == "ibm_quantum" and conn.instance:
            body.update(zip(("hub", "group", "project"), conn.instance.split("/"), strict=True))
        outcome = self._once(
            "POST",
            "/jobs",
            lambda: self._find_tagged(submit_tag),
            content=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": submit_tag[len(SUBMIT_TAG_PREFIX) :],
            },
            timeout=httpx.Timeout(
                self._submit_timeout, connect=min(self._submit_timeout, DEFAULT_CONNECT)
            ),
        )
        if isinstance(outcome, JobInfo):
            return outcome
        answer = outcome.json()
        if isinstance(answer.get("state"), dict):  # qrt serve answers the whole job
            return self._parse_job(answer)
        try:
            return self.job(str(answer["id"]))
        except RuntimeApiError:  # the job exists; report what the submission told us
            backend = answer.get("backend") or backend
            return JobInfo(str(answer["id"]), program_id, "QUEUED", backend, tags=tuple(all_tags))

    def _find_tagged(self, tag: str) -> JobInfo | None:
        found = self.jobs(limit=1, tags=[tag])
        return found[0] if found else None

    def job(self, job_id: str, *, include_params: bool = True) -> JobInfo:
        # With params by default, like the embedded runtime; they stay in their encoded JSON form.
        if include_params:
            return self._parse_job(self._json("GET", f"/jobs/{job_id}"))
        return self._parse_job(
            self._json("GET", f"/jobs/{job_id}", params={"exclude_params": "true"})
        )

    def jobs(
        self,
        *,
        limit: int | None = 10,
        skip: int = 0,
        backend: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        descending: bool = True,
        created_after: str | None = None,
    ) -> list[JobInfo]:
        params: dict[str, Any] = dict(self._job_list_params)
        if backend:
            params["backend"] = backend
        if pending is not None:
            params["pending"] = "true" if pending else "false"
        if program_id:
            params["program"] = program_id
        if tags:
            params["tags"] = list(tags)
        if session_id:
            params["session_id"] = session_id
        if created_after:
            params["created_after"] = created_after
        if not descending:
            params["sort"] = "ASC"
        pages = self._pages("/jobs", "jobs", params, limit, skip, 50)
        return [self._parse_job(j) for j in pages]

    def job_result(self, job_id: str) -> str:
        return self._call("GET", f"/jobs/{job_id}/results").text

    def job_interim_results(self, job_id: str) -> list[str]:
        return parse_interim(self._call("GET", f"/jobs/{job_id}/interim_results").text)

    def job_logs(self, job_id: str) -> str:
        return self._call("GET", f"/jobs/{job_id}/logs").text

    def cancel_job(self, job_id: str) -> None:
        # A 409 to a re-sent cancel means the job is final -- possibly by the first, unanswered try.
        self._call("POST", f"/jobs/{job_id}/cancel", ok_after_ambiguous=(409,))

    def delete_job(self, job_id: str) -> None:
        self._call("DELETE", f"/jobs/{job_id}", ok_after_ambiguous=(404,))

    def close_session(self, session_id: str) -> None:
        self._call("DELETE", f"/sessions/{session_id}/close", ok_after_ambiguous=(404,))

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def _flatten(query: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for key, value in query:
        for item in value if isinstance(value, list) else [value]:
            flat.append((key, str(item)))
    return flat
