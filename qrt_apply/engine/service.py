"""The local runtime's service layer: the program and job API of one user, over a store and an executor.

Shared by the embedded runtime (``runtime/embedded.py``) and the HTTP app (``server/app.py``). Every
method takes the calling user's id first and applies the visibility rules: a user sees their own programs and jobs plus public programs; anything
else is ``NotFoundError``. Only the owner may change or delete a program (403 otherwise) or see its
source. Built-in programs (``sampler``, ``estimator``) can be run and read, never listed or changed.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from qrt_apply.engine import backends, checks
from qrt_apply.engine.checks import MAX_ROWS, MAX_SECONDS
from qrt_apply.engine.executor import Executor, is_builtin
from qrt_apply.engine.records import JobQuery, JobRecord, ProgramRecord, SessionRecord, utc_now
from qrt_apply.engine.store import Store
from qrt_apply.errors import ConflictError, NotFoundError, RuntimeApiError
from qrt_apply.model import sha256_hex
from qrt_apply.runtime.base import (
    FINAL_STATUSES,
    SUBMIT_TAG_PREFIX,
    BackendInfo,
    JobInfo,
    ProgramInfo,
)

__all__ = ["BUILTIN_COST", "MAX_ROWS", "MAX_SECONDS", "RESERVED_PROGRAM_IDS", "RuntimeService"]

RESERVED_PROGRAM_IDS = frozenset(
    {"sampler", "estimator", "circuit-runner", "qasm3-runner", "hello-world", "vqe", "qaoa"}
)
BUILTIN_COST = 3600  # seconds a built-in job may run unless the run asks for less
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_JOB_ID_ALPHABET = string.ascii_lowercase + string.digits


def _seconds_between(start: str | None, end: str | None) -> int:
    if start is None:
        return 0
    stop = datetime.fromisoformat(end) if end else datetime.now(UTC)
    return math.ceil((stop - datetime.fromisoformat(start)).total_seconds())


def _program_info(
    program: ProgramRecord, *, with_data: bool, owner: str | None = None
) -> ProgramInfo:
    """``owner``: the viewer; the source digest goes to the program's owner only, like the source."""
    mine = with_data or (owner is not None and program.owner == owner)
    return ProgramInfo(
        id=program.id,
        name=program.name,
        description=program.description,
        max_execution_time=program.max_execution_time,
        spec=program.spec,
        is_public=program.is_public,
        data=program.source if with_data else None,
        creation_date=program.created,
        update_date=program.updated,
        data_digest=sha256_hex(program.source) if mine else None,
    )


def _job_info(job: JobRecord) -> JobInfo:
    return JobInfo(
        id=job.id,
        program_id=job.program_id,
        status=job.status,
        backend=job.backend,
        reason=job.reason,
        created=job.created,
        started=job.started,
        ended=job.ended,
        session_id=job.session_id,
        tags=job.tags,
        params=None if job.params is None else json.loads(job.params),
    )


def _resent(job: JobRecord, program_id: str, params_text: str, tag: str) -> JobInfo:
    """The answer to a submission whose tag ``job`` (read with its params) already carries: that
    job, as its own submission was answered. The tag must come with the same program and inputs:
    it names one submission, and answering another request with its job would hide the
    difference (409)."""
    same_params = job.params is not None and json.loads(job.params) == json.loads(params_text)
    if job.program_id != program_id or not same_params:
        raise ConflictError(
            f"submission tag {tag} already names job {job.id}, submitted with another "
            "program or other inputs"
        )
    return _job_info(replace(job, params=None))


class RuntimeService:
    """The runtime API over ``store``; jobs are run by ``executor``."""

    def __init__(self, store: Store, executor: Executor, *, lazy_recovery: bool = True) -> None:
        self.store = store
        self.executor = executor
        # False for read-only users (``qrt plan``): looking at a job never starts running it.
        self.lazy_recovery = lazy_recovery

    # -- backends and programs -----------------------------------------------------------------

    def backends(self) -> list[BackendInfo]:
        return [backends.backend_info(name) for name in backends.BACKEND_NAMES]

    def canonical_backend(self, name: str | None) -> str:
        """The executed backend for ``name`` (None: the default); 400 when unknown."""
        try:
            return backends.canonical_name(name or backends.DEFAULT_BACKEND)
        except (KeyError, ValueError) as exc:
            raise checks.bad(f"unknown backend {name!r}") from exc

    def programs(
        self, owner: str, *, limit: int | None = None, offset: int = 0
    ) -> tuple[list[ProgramInfo], int]:
        checks.paging(limit, offset)
        records, total = self.store.list_programs(owner, limit, offset)
        return [_program_info(p, with_data=False, owner=owner) for p in records], total

    def _visible_program(self, owner: str, program_id: str) -> ProgramRecord:
        program = self.store.get_program(program_id)
        if program is None or (program.owner != owner and not program.is_public):
            raise NotFoundError(f"program {program_id} not found")
        return program

    def _owned_program(self, owner: str, program_id: str) -> ProgramRecord:
        program = self._visible_program(owner, program_id)
        if program.owner != owner:
            raise RuntimeApiError(f"program {program_id} belongs to another user", status=403)
        return program

    def program(self, owner: str, program_id: str) -> ProgramInfo:
        if is_builtin(program_id):
            return ProgramInfo(id=program_id, name=program_id, is_public=True)
        program = self._visible_program(owner, program_id)
        return _program_info(program, with_data=program.owner == owner)

    def upload_program(
        self,
        owner: str,
        *,
        name: str,
        source: str,
        description: str = "",
        max_execution_time: int,
        spec: Mapping[str, Any] | None = None,
        is_public: bool = False,
    ) -> ProgramInfo:
        if not isinstance(name, str) or not name.strip():
            raise checks.bad("a program needs a name")
        if not isinstance(source, str) or not source.strip():
            raise checks.bad("a program needs its source")
        checks.storable_text(name, "the program name")
        checks.storable_text(source, "the program source")
        checks.storable_text(description or "", "the program description")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "program"
        now = utc_now()
        record = ProgramRecord(
            id=f"{slug}-{secrets.token_hex(6)}",  # the suffix keeps it off the reserved ids
            owner=owner,
            name=name,
            source=source,
            description=description or "",
            max_execution_time=checks.positive_int(max_execution_time, "max_execution_time"),
            spec=checks.program_spec(spec),
            is_public=bool(is_public),
            created=now,
            updated=now,
        )
        self.store.insert_program(record)
        return _program_info(record, with_data=True)

    def update_program_data(self, owner: str, program_id: str, source: str) -> None:
        self._owned_program(owner, program_id)
        if not isinstance(source, str) or not source.strip():
            raise checks.bad("a program needs its source")
        self.store.update_program(
            program_id, source=checks.storable_text(source, "the program source")
        )

    def update_program_metadata(
        self,
        owner: str,
        program_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        self._owned_program(owner, program_id)
        fields: dict[str, Any] = {}
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise checks.bad("a program name must not be empty")
            fields["name"] = checks.storable_text(name, "the program name")
        if description is not None:
            fields["description"] = checks.storable_text(description, "the program description")
        if max_execution_time is not None:
            fields["max_execution_time"] = checks.positive_int(
                max_execution_time, "max_execution_time"
            )
        if spec is not None:
            fields["spec"] = checks.program_spec(spec)
        if fields:
            self.store.update_program(program_id, **fields)

    def set_program_visibility(self, owner: str, program_id: str, public: bool) -> None:
        self._owned_program(owner, program_id)
        self.store.update_program(program_id, is_public=int(bool(public)))

    def delete_program(self, owner: str, program_id: str) -> None:
        self._owned_program(owner, program_id)
        self.store.delete_program(program_id)

    # -- running jobs --------------------------------------------------------------------------

    def run(
        self,
        owner: str,
        program_id: str,
        params_text: str,
        *,
        backend: str | None = None,
        tags: Sequence[str] = (),
        cost: int | None = None,
        session_id: str | None = None,
        start_session: bool = False,
        session_time: int | None = None,
        log_level: str | None = None,
    ) -> JobInfo:
        checks.storable_text(program_id, "program_id")
        session_id = checks.optional_text(session_id, "session_id")
        if cost is not None:
            cost = checks.positive_int(cost, "max_execution_time (cost)")
        if session_time is not None:
            session_time = checks.positive_int(session_time, "session max_time (session_time)")
        if is_builtin(program_id):
            limit = cost or BUILTIN_COST
        else:
            refusal = self.executor.program_refusal()
            if refusal is not None:
                raise RuntimeApiError(refusal, status=403)
            program_limit = self._visible_program(owner, program_id).max_execution_time
            limit = min(cost, program_limit) if cost else program_limit
        self.canonical_backend(backend)
        checks.json_object(params_text, "job params")
        if log_level is not None and log_level.upper() not in _LOG_LEVELS:
            raise checks.bad(f"unknown log level {log_level!r}")
        tags = checks.tag_list(tags)
        submit_tag = next((t for t in tags if t.startswith(SUBMIT_TAG_PREFIX)), None)
        if submit_tag is not None:  # the common re-send: answered before any session check
            existing = self.store.job_with_tag(owner, submit_tag, with_params=True)
            if existing is not None:
                return _resent(existing, program_id, params_text, submit_tag)
        job_id = "".join(secrets.choice(_JOB_ID_ALPHABET) for _ in range(20))
        if start_session:
            session_id = job_id
        elif session_id is not None:
            session = self.store.session(session_id)
            if session is not None and session.owner != owner:
                raise NotFoundError(f"session {session_id} not found")
            if session is not None and session.closed is not None:
                raise ConflictError(f"session {session_id} is closed")
        record = JobRecord(
            id=job_id,
            owner=owner,
            program_id=program_id,
            backend=backend or backends.DEFAULT_BACKEND,  # answered as given, run canonicalised
            status="QUEUED",
            created=utc_now(),
            cost=limit,
            session_id=session_id,
            tags=tags,
            log_level=log_level.upper() if log_level else None,
            runner=self.executor.runner,
            runner_start=self.executor.runner_start,
        )
        # A submission tag names one submission: the same owner sending it again (a retry, a later
        # apply, another checkout of the same commit, through this process or another one on the
        # same database) gets the job that carries it, never a second job. The store looks up and
        # inserts in one transaction.
        existing = self.store.insert_job(
            record,
            params_text,
            new_session=start_session,
            session_time=session_time,
            submit_tag=submit_tag,
        )
        if existing is not None:  # sent at the same moment by someone else: theirs won
            return _resent(existing, program_id, params_text, submit_tag or "")
        self.executor.submit(job_id)
        return _job_info(record)

    def recover(self) -> list[str]:
        """Re-queue unfinished jobs whose runner process is gone; returns their ids."""
        return [job.id for job in self.store.unfinished_jobs() if self._recover_job(job)]

    def _recover_job(self, job: JobRecord) -> bool:
        if self.executor.runner_alive(job.runner, job.runner_start, job.id):
            return False
        # Compare-and-set on the old runner: of two processes recovering at once, one wins.
        if not self.store.requeue_job(
            job.id, job.runner, self.executor.runner, self.executor.runner_start
        ):
            return False
        self.executor.submit(job.id)
        return True

    # -- jobs ----------------------------------------------------------------------------------

    def _job(self, owner: str, job_id: str, *, with_params: bool = False) -> JobRecord:
        job = self.store.get_job(job_id, with_params=with_params)
        if job is None or job.owner != owner:
            raise NotFoundError(f"job {job_id} not found")
        return job

    def job(self, owner: str, job_id: str, *, include_params: bool = True) -> JobInfo:
        """The job; an unfinished one whose runner died is re-queued here (lazy recovery)."""
        job = self._job(owner, job_id, with_params=include_params)
        if self.lazy_recovery and job.status not in FINAL_STATUSES and self._recover_job(job):
            job = self._job(owner, job_id, with_params=include_params)
        return _job_info(job)

    def jobs(
        self,
        owner: str,
        *,
        limit: int | None = None,
        offset: int = 0,
        backend: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        created_after: str | datetime | None = None,
        created_before: str | datetime | None = None,
        descending: bool = True,
    ) -> tuple[list[JobInfo], int]:
        checks.paging(limit, offset)
        query = JobQuery(
            limit=limit,
            offset=offset,
            backend=checks.optional_text(backend, "backend"),
            pending=pending,
            program_id=checks.optional_text(program_id, "program_id"),
            tags=checks.tag_list(tags),
            session_id=checks.optional_text(session_id, "session_id"),
            created_after=checks.timestamp(created_after, "created_after"),
            created_before=checks.timestamp(created_before, "created_before"),
            descending=descending,
        )
        records, total = self.store.list_jobs(owner, query)
        return [_job_info(j) for j in records], total

    def job_result(self, owner: str, job_id: str) -> str:
        job = self._job(owner, job_id)
        return self.store.job_text(job_id, "result") if job.status in FINAL_STATUSES else ""

    def job_interim_results(self, owner: str, job_id: str) -> list[str]:
        self._job(owner, job_id)
        return self.store.interim_results(job_id)

    def job_logs(self, owner: str, job_id: str) -> str:
        self._job(owner, job_id)
        return self.store.job_text(job_id, "logs")

    def job_metrics(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self._job(owner, job_id)
        seconds = _seconds_between(job.started, job.ended)
        extra = job.metrics or {}
        return {
            "timestamps": {"created": job.created, "running": job.started, "finished": job.ended},
            "usage": {"seconds": seconds, "quantum_seconds": seconds},
            "bss": {"seconds": seconds},
            "executions": extra.get("executions", 0),
            "num_circuits": extra.get("num_circuits", 0),
            "qiskit_version": extra.get("qiskit_version"),
        }

    def cancel_job(self, owner: str, job_id: str) -> None:
        self._job(owner, job_id)
        if not self.store.cancel_job(job_id):
            raise ConflictError(f"job {job_id} is already final and cannot be cancelled")
        self.executor.cancel(job_id)

    def delete_job(self, owner: str, job_id: str) -> None:
        self._job(owner, job_id)
        if self.store.cancel_job(job_id):
            self.executor.cancel(job_id)
        self.store.delete_job(job_id)

    def update_job_tags(self, owner: str, job_id: str, tags: Sequence[str]) -> None:
        self._job(owner, job_id)
        self.store.set_job_tags(job_id, checks.tag_list(tags))

    def open_session(self, owner: str, *, max_time: int | None = None) -> SessionRecord:
        """A new session of ``owner`` that jobs may then name (``run(session_id=...)``)."""
        if max_time is not None:
            max_time = checks.positive_int(max_time, "session max_ttl")
        session_id = "s" + "".join(secrets.choice(_JOB_ID_ALPHABET) for _ in range(19))
        return self.store.open_session(session_id, owner, max_time)

    def session(self, owner: str, session_id: str) -> SessionRecord:
        session = self.store.session(session_id)
        if session is None or session.owner != owner:
            raise NotFoundError(f"session {session_id} not found")
        return session

    def close_session(self, owner: str, session_id: str) -> None:
        self.session(owner, session_id)
        self.store.close_session(session_id)

    def cancel_session(self, owner: str, session_id: str) -> int:
        """Close the session and cancel its unfinished jobs; returns how many were cancelled."""
        self.close_session(owner, session_id)
        pending, _ = self.store.list_jobs(owner, JobQuery(session_id=session_id, pending=True))
        cancelled = 0
        for job in pending:
            if self.store.cancel_job(job.id, "Session cancelled"):
                self.executor.cancel(job.id)
                cancelled += 1
        return cancelled

    def close(self, *, wait: bool = False, timeout: float | None = None) -> None:
        """Stop the executor. Unfinished jobs are handed over (killed, re-queued with no runner)
        for ``recover`` in the next process; with ``wait`` they may first finish, for up to
        ``timeout`` seconds (None: as long as they take)."""
        self.executor.shutdown(wait, timeout)
