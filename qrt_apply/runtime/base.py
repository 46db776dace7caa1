"""The Runtime protocol: the QiskitRuntimeService method set, as plain data.

The reconciler and the applier talk to nothing else. Two implementations exist: the embedded runtime
(``runtime/embedded.py``, in-process over ``engine/service.py``) and the HTTP client (``runtime/http.py``,
the Qiskit Runtime REST API). One contract test suite runs against both.

Conventions shared by every implementation:

* Job statuses are the upper-case wire values: ``QUEUED``, ``RUNNING``, ``COMPLETED``, ``FAILED``,
  ``CANCELLED``. "ran too long" is ``CANCELLED`` with ``reason == "RAN TOO LONG"``.
* ``inputs`` given to ``run`` are JSON-able values or objects the RuntimeEncoder understands; they are
  sent encoded with ``runtime/encoding.py``.
* ``job_result`` returns the stored result **text**: RuntimeEncoder JSON for a completed job, the
  traceback for a failed one. Callers decide how to decode it.
* Unknown or invisible programs and jobs raise ``NotFoundError``; a duplicate program name raises
  ``ConflictError``; see ``qrt_apply/errors.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "SUBMIT_TAG_PREFIX",
    "BackendInfo",
    "JobInfo",
    "ProgramInfo",
    "Runtime",
    "Target",
]

# Tag prefix of a job's idempotency tag: journaled by apply before submitting, carried by the job,
# and (over HTTP) sent as its Idempotency-Key, so an interrupted submission is found, not repeated.
SUBMIT_TAG_PREFIX = "qrt-submit:"

JOB_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class Target:
    """Which runtime a lockfile belongs to. Never holds a token."""

    channel: str  # "embedded" | "ibm_quantum" | "ibm_cloud" | "ibm_quantum_platform"
    url: str  # the embedded runtime's data directory (as given), or the account URL
    instance: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "url": self.url, "instance": self.instance}


@dataclass(frozen=True)
class ProgramInfo:
    id: str
    name: str
    description: str = ""
    max_execution_time: int = 0
    spec: Mapping[str, Any] = field(default_factory=dict)
    is_public: bool = False
    data: str | None = None  # plain-text source; only for the owner, only from program()
    creation_date: str | None = None
    update_date: str | None = None
    # sha256 hex of the UTF-8 source (as ``model.content_digest``), only for the owner; None where
    # the runtime does not say. Lets a refresh tell from a listing whether the source changed.
    data_digest: str | None = None


@dataclass(frozen=True)
class JobInfo:
    id: str
    program_id: str
    status: str
    backend: str | None = None
    reason: str | None = None
    created: str | None = None  # ISO 8601 UTC
    started: str | None = None
    ended: str | None = None
    session_id: str | None = None
    tags: tuple[str, ...] = ()
    params: Mapping[str, Any] | None = None  # only when asked for

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class BackendInfo:
    name: str
    num_qubits: int
    simulator: bool = True
    noisy: bool = False
    operational: bool = True
    # The most shots one PUB may ask for, where the runtime enforces it (qrt's do); None where it
    # does not say (IBM's configuration has a max_shots it documents as no longer enforced).
    max_shots: int | None = None


@runtime_checkable
class Runtime(Protocol):
    """The method set of QiskitRuntimeService that qrt needs, returning plain data."""

    @property
    def target(self) -> Target: ...

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
        """Every backend, with the details (qubits, limits, status) of those in ``names`` at
        least (of all when None); a runtime that pays a request per detail may leave the others'
        at their defaults."""
        ...

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]: ...

    def program(self, program_id: str) -> ProgramInfo: ...

    def upload_program(self, data: str, metadata: Mapping[str, Any]) -> str:
        """Upload source ``data`` (plain text); ``metadata`` has name, max_execution_time,
        description, spec, is_public. Returns the new program id."""
        ...

    def update_program(
        self,
        program_id: str,
        data: str | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> None: ...

    def set_program_visibility(self, program_id: str, public: bool) -> None: ...

    def delete_program(self, program_id: str) -> None: ...

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
    ) -> JobInfo: ...

    def job(self, job_id: str, *, include_params: bool = True) -> JobInfo:
        """One job; ``include_params=False`` leaves its inputs out (cheap status polls)."""
        ...

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
        """Jobs matching every filter given, newest first unless ``descending=False``;
        ``created_after``: an ISO 8601 time, jobs created at or after it."""
        ...

    def job_result(self, job_id: str) -> str: ...

    def job_interim_results(self, job_id: str) -> list[str]:
        """Each interim result as its JSON text, oldest first."""
        ...

    def job_logs(self, job_id: str) -> str: ...

    def cancel_job(self, job_id: str) -> None: ...

    def delete_job(self, job_id: str) -> None: ...

    def close_session(self, session_id: str) -> None: ...

    def close(self) -> None: ...
