"""``IqpRuntime``: the Runtime protocol over IBM Quantum Platform's v1 API (channels
``ibm_quantum_platform`` and ``ibm_cloud``), as recorded in ``shared/reference/iqp-rest-api.md``.

The platform runs the built-in ``sampler`` and ``estimator`` and nothing else: it has no program
upload. So ``programs()`` is empty, ``program()`` is not found, and uploading, updating or deleting a
program raises ``ConfigError`` (``qrt plan`` refuses Program documents before it gets here).

It is an :class:`~qrt_apply.runtime.http.HttpRuntime` (same wire, retries, paging, job calls) with:

* **login** by :class:`~qrt_apply.runtime.iqp_auth.IamTokens` (API key → bearer token, renewed
  before it expires; a 401 renews it once), the API base from the CRN's region and the
  ``Service-CRN`` and ``IBM-API-Version`` headers (``iqp_auth.py``);
* **jobs**: ``run`` transpiles and encodes the PUBs for the backend's ``/configuration``
  (``iqp_pubs.py``) and sends ``POST /jobs`` with ``program_id``, ``backend``, ``params``,
  ``tags`` (qrt's submission tag among them), and ``session_id`` / ``log_level`` / ``cost`` when
  given. The POST is never re-sent blindly: after an ambiguous failure (timeout, 5xx) the job is
  looked for by its tag (``GET /jobs?tags=TAG``) and adopted when found. Listings and status reads
  leave the inputs out (``exclude_params=true``). A job's ``timestamps.running`` / ``finished`` are
  its ``started`` / ``ended``; ``reason_code`` 1305 ("ran too long") is ``CANCELLED`` with reason
  ``RAN TOO LONG``, as every Runtime reports it;
* **sessions**: :meth:`IqpRuntime.open_session` (``POST /sessions`` with mode ``dedicated`` or
  ``batch``, backend and instance; never re-sent after an ambiguous failure, as no listing could
  tell whether it opened one: it fails saying so), :meth:`IqpRuntime.close_session` (``PATCH /sessions/{id}``
  with ``{"accepting_jobs": false}``: running jobs finish, no new ones are accepted);
* **results** turned into the lockfile's form from either encoding (``iqp_pubs.canonical_result``);
  a result kept outside the API (``{"url": ...}``, a large one) is fetched from that presigned URL
  with none of qrt's headers; a failed job's result text is returned as it is. Primitives publish no interim results, so
  ``job_interim_results`` is always empty and asks nothing;
* **backends** from ``GET /backends``: one call when its entries carry ``qubits`` (and
  ``status.name``, ``online`` when operational), else each one's ``/configuration`` and ``/status``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from qrt_apply.errors import ConfigError, NotFoundError, RuntimeApiError
from qrt_apply.runtime.accounts import PLATFORM_CHANNELS, Account
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, BackendInfo, JobInfo, ProgramInfo
from qrt_apply.runtime.http import DEFAULT_TIMEOUT, HttpRuntime, new_submit_tag
from qrt_apply.runtime.http_auth import Connection
from qrt_apply.runtime.http_parse import parse_backend, parse_job
from qrt_apply.runtime.http_wire import RetryPolicy
from qrt_apply.runtime.iqp_auth import IBM_API_VERSION, IamTokens, api_base_url, iam_token_url

__all__ = ["NO_PROGRAMS", "SESSION_MODES", "IqpRuntime"]

NO_PROGRAMS = (
    "IBM Quantum Platform has no program upload: it runs only the built-in sampler and estimator"
)
SESSION_MODES = ("dedicated", "batch")
_BUILTINS = ("sampler", "estimator")
_RAN_TOO_LONG = 1305


def _parse_iqp_job(data: Any) -> JobInfo:
    info = parse_job(data)
    stamps = data.get("timestamps") if isinstance(data.get("timestamps"), Mapping) else {}
    state = data.get("state") if isinstance(data.get("state"), Mapping) else {}
    status, reason = info.status, info.reason
    if state.get("reason_code") == _RAN_TOO_LONG:
        status, reason = "CANCELLED", "RAN TOO LONG"
    return JobInfo(
        id=info.id,
        program_id=info.program_id,
        status=status,
        backend=info.backend,
        reason=reason,
        created=info.created or _text(stamps.get("created")),
        started=info.started or _text(stamps.get("running")),
        ended=info.ended or _text(stamps.get("finished")),
        session_id=info.session_id,
        tags=info.tags,
        params=info.params,
    )


def _listed_backend(device: Any) -> BackendInfo | None:
    """A backend from its ``/backends`` entry alone, when that says how many qubits it has (the
    0.45+ listing: ``name``, ``qubits``, ``status.name``); None for a bare name. Every device of the
    platform is a device, not a simulator."""
    if not isinstance(device, Mapping):
        return None
    qubits = device.get("qubits", device.get("physical_qubits"))
    if isinstance(qubits, bool) or not isinstance(qubits, int):
        return None
    status = device.get("status")
    state = status.get("name") if isinstance(status, Mapping) else None
    return BackendInfo(
        name=str(device["name"]),
        num_qubits=qubits,
        simulator=False,
        noisy=True,
        operational=state is None or str(state).lower() in ("online", "active"),
    )


def _external_url(text: str) -> str | None:
    """The URL of a result the platform stores outside the API (a large one): the answer is then
    ``{"url": "https://..."}``, as the official client expects; None for a result itself."""
    if '"url"' not in text[:2000]:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    url = body.get("url") if isinstance(body, dict) else None
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class IqpRuntime(HttpRuntime):
    """A Runtime on IBM Quantum Platform (see the module docstring).

    ``environ`` is where ``IAM_URL`` is read (default ``os.environ``); ``wall_clock`` times the
    bearer token's renewal. The other arguments are :class:`HttpRuntime`'s."""

    _job_list_params: Mapping[str, str] = {"exclude_params": "true"}

    def __init__(
        self,
        account: Account,
        *,
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        submit_timeout: float = 120.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if account.channel not in PLATFORM_CHANNELS:
            raise ConfigError(
                f"IqpRuntime serves the {' and '.join(sorted(PLATFORM_CHANNELS))} channels, "
                f"not {account.channel}"
            )
        super().__init__(
            account,
            client=client,
            retry=retry,
            sleep=sleep,
            clock=clock,
            timeout=timeout,
            submit_timeout=submit_timeout,
        )
        env = os.environ if environ is None else environ
        self._base = api_base_url(account)
        self._iam = IamTokens(
            self._wire, account.token, iam_token_url(account, env), clock=wall_clock
        )
        self._configurations: dict[str, Mapping[str, Any]] = {}

    def __repr__(self) -> str:
        return f"IqpRuntime({self.target!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        return self._iam.secrets

    @property
    def _relogin_on_401(self) -> bool:
        return True  # the bearer token may have been revoked or expired early

    def _connection(self, *, stale: Connection | None = None) -> Connection:
        if stale is not None:
            self._iam.invalidate(stale.headers["Authorization"].removeprefix("Bearer "))
        headers = {
            "Authorization": f"Bearer {self._iam.token()}",
            "Service-CRN": str(self.account.instance),
            "IBM-API-Version": IBM_API_VERSION,
        }
        return Connection(self._base, headers, self.account.instance, self._iam.secrets)

    @staticmethod
    def _parse_job(data: Any) -> JobInfo:
        return _parse_iqp_job(data)

    def _configuration(self, backend: str) -> Mapping[str, Any]:
        if backend not in self._configurations:
            config = self._json("GET", f"/backends/{backend}/configuration")
            self._configurations[backend] = config if isinstance(config, Mapping) else {}
        return self._configurations[backend]

    # -- the Runtime protocol -------------------------------------------------------------------

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
        answer = self._json("GET", "/backends")
        devices = answer.get("devices") if isinstance(answer, Mapping) else None
        infos = []
        for device in devices or []:
            name = device.get("name") if isinstance(device, Mapping) else device
            if not name:
                continue
            listed = _listed_backend(device)
            if listed is not None:
                infos.append(listed)
                continue
            config = self._configuration(str(name))
            try:
                status = self._json("GET", f"/backends/{name}/status")
            except RuntimeApiError:
                status = {}
            infos.append(parse_backend(str(name), config, status))
        return infos

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]:
        return []

    def program(self, program_id: str) -> ProgramInfo:
        raise NotFoundError(f"program {program_id!r}: {NO_PROGRAMS}")

    def upload_program(self, data: str, metadata: Mapping[str, Any]) -> str:
        raise ConfigError(NO_PROGRAMS)

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
        raise ConfigError(NO_PROGRAMS)

    def set_program_visibility(self, program_id: str, public: bool) -> None:
        raise ConfigError(NO_PROGRAMS)

    def delete_program(self, program_id: str) -> None:
        raise ConfigError(NO_PROGRAMS)

    def open_session(self, backend: str | None, mode: str = "dedicated") -> str:
        """``POST /sessions``; the new session's id."""
        if mode not in SESSION_MODES:
            raise ConfigError(f"session mode must be one of {', '.join(SESSION_MODES)}")
        if not backend:
            raise ConfigError("a session on IBM Quantum Platform needs the batch's backend")
        body = {"mode": mode, "backend": backend, "instance": self.account.instance}
        # The API lists no sessions, so a POST that may have reached the server (timeout, 5xx) is
        # not sent again: a second one could open a second session. 429 and unsent requests are.
        response = self._once("POST", "/sessions", None, json_body=body)
        assert isinstance(response, httpx.Response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        session_id = answer.get("id") if isinstance(answer, Mapping) else None
        if not session_id:
            raise RuntimeApiError("POST /sessions: the answer has no session id")
        return str(session_id)

    def close_session(self, session_id: str) -> None:
        try:
            self._call(
                "PATCH",
                f"/sessions/{session_id}",
                json_body={"accepting_jobs": False},
                ok_after_ambiguous=(404,),
            )
        except NotFoundError:
            pass  # gone already: nothing more can join it

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
        from qrt_apply.runtime.iqp_pubs import wire_params

        if program_id not in _BUILTINS:
            raise ConfigError(f"cannot run {program_id!r}: {NO_PROGRAMS}")
        if not backend:
            raise ConfigError("jobs on IBM Quantum Platform need a backend (backend: in the batch)")
        params = wire_params(program_id, inputs, self._configuration(backend))
        submit_tag = next((t for t in tags if t.startswith(SUBMIT_TAG_PREFIX)), new_submit_tag())
        all_tags = list(dict.fromkeys([*tags, submit_tag]))
        if start_session and session_id is None:
            session_id = self.open_session(backend, "dedicated")
        body: dict[str, Any] = {"program_id": program_id, "backend": backend, "params": params}
        optional = {"cost": max_execution_time, "log_level": log_level, "session_id": session_id}
        body.update({key: value for key, value in optional.items() if value is not None})
        body["tags"] = all_tags
        outcome = self._once(
            "POST",
            "/jobs",
            lambda: self._find_tagged(submit_tag),
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=httpx.Timeout(self._submit_timeout, connect=5.0),
        )
        if isinstance(outcome, JobInfo):
            return outcome
        try:
            answer = outcome.json()
            job_id = str(answer["id"])
        except (ValueError, KeyError, TypeError):
            raise RuntimeApiError("POST /jobs: the answer has no job id") from None
        return JobInfo(
            job_id,
            program_id,
            "QUEUED",
            backend=_text(answer.get("backend")) or backend,
            session_id=_text(answer.get("session_id")) or session_id,
            tags=tuple(all_tags),
        )

    def job_result(self, job_id: str) -> str:
        from qrt_apply.runtime.iqp_pubs import canonical_result

        text = self._call("GET", f"/jobs/{job_id}/results").text
        url = _external_url(text)
        if url is not None:
            text = self._download(job_id, url)
        return canonical_result(text) or text

    def _download(self, job_id: str, url: str) -> str:
        """A result the platform keeps elsewhere: a plain GET of the presigned URL it named, with
        none of our headers (the URL is its own credential, so no message quotes it)."""
        try:
            return self._wire.request("GET", url).text
        except RuntimeApiError as exc:
            where = urlsplit(url).hostname or "?"
            raise RuntimeApiError(
                f"job {job_id}: its result could not be downloaded from {where}, where the "
                f"platform keeps it" + (f" (HTTP {exc.status})" if exc.status else ""),
                status=exc.status,
            ) from None

    def job_interim_results(self, job_id: str) -> list[str]:
        return []
