"""The embedded runtime: the ``Runtime`` protocol in-process, over ``engine/service.py``.

State lives in ``data_dir/runtime.db`` (SQLite); the implicit user is ``local``. Construction only
opens the database, so ``qrt plan`` pays nothing for it: executor threads start on the first
``run()``, or when ``job()`` finds an unfinished job whose runner process is gone and re-queues it
(recovery). Several processes may share one data directory; a job is re-queued only when the
process holding it is dead.

``close()`` lets the jobs this process holds finish for up to ``close_timeout`` seconds (None: as
long as they take), then hands the rest over: their child processes are killed and the jobs go back
to QUEUED with no runner, so the next process that looks at one (``qrt refresh``) runs it again.
``qrt apply --no-wait`` should therefore pass ``close_timeout=0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from qrt_apply.engine.executor import LocalExecutor
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store
from qrt_apply.errors import RuntimeApiError
from qrt_apply.runtime.base import BackendInfo, JobInfo, ProgramInfo, Target

__all__ = ["DB_FILE", "LOCAL_USER", "EmbeddedRuntime"]

DB_FILE = "runtime.db"
LOCAL_USER = "local"


class EmbeddedRuntime:
    """A ``Runtime`` whose server is this process, with its state in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        display_url: str = ".qrt",
        workers: int = 2,
        close_timeout: float | None = None,
        read_only: bool = False,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        ignore = data_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# qrt's embedded runtime state; never committed\n*\n")
        self.data_dir = data_dir
        self.close_timeout = close_timeout
        self._target = Target("embedded", display_url)
        self._store = Store(data_dir / DB_FILE)
        self._owner = self._store.ensure_user(LOCAL_USER)
        self._executor = LocalExecutor(self._store, workers=workers)
        # read_only (``qrt plan``): looking at a job whose runner died reports it, never re-runs it.
        self.service = RuntimeService(self._store, self._executor, lazy_recovery=not read_only)
        self._closed = False

    @property
    def target(self) -> Target:
        return self._target

    def backends(self) -> list[BackendInfo]:
        return self.service.backends()

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]:
        return self.service.programs(self._owner, limit=limit, offset=skip)[0]

    def program(self, program_id: str) -> ProgramInfo:
        return self.service.program(self._owner, program_id)

    def upload_program(self, data: str, metadata: Mapping[str, Any]) -> str:
        for key in ("name", "max_execution_time"):
            if not metadata.get(key):
                raise RuntimeApiError(f"program metadata needs {key!r}", status=400)
        program = self.service.upload_program(
            self._owner,
            name=metadata["name"],
            source=data,
            description=metadata.get("description") or "",
            max_execution_time=metadata["max_execution_time"],
            spec=metadata.get("spec"),
            is_public=bool(metadata.get("is_public", False)),
        )
        return program.id

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
            self.service.update_program_data(self._owner, program_id, data)
        if (name, description, max_execution_time, spec) != (None, None, None, None):
            self.service.update_program_metadata(
                self._owner,
                program_id,
                name=name,
                description=description,
                max_execution_time=max_execution_time,
                spec=spec,
            )

    def set_program_visibility(self, program_id: str, public: bool) -> None:
        self.service.set_program_visibility(self._owner, program_id, public)

    def delete_program(self, program_id: str) -> None:
        self.service.delete_program(self._owner, program_id)

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
        from qrt_apply.runtime import encoding

        return self.service.run(
            self._owner,
            program_id,
            encoding.dumps(dict(inputs)),
            backend=backend,
            tags=list(tags),
            cost=max_execution_time,
            session_id=session_id,
            start_session=start_session,
            log_level=log_level,
        )

    def job(self, job_id: str, *, include_params: bool = True) -> JobInfo:
        return self.service.job(self._owner, job_id, include_params=include_params)

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
    ) -> list[JobInfo]:
        found, _ = self.service.jobs(
            self._owner,
            limit=limit,
            offset=skip,
            backend=backend,
            pending=pending,
            program_id=program_id,
            tags=tuple(tags),
            session_id=session_id,
            descending=descending,
        )
        return found

    def job_result(self, job_id: str) -> str:
        return self.service.job_result(self._owner, job_id)

    def job_interim_results(self, job_id: str) -> list[str]:
        return self.service.job_interim_results(self._owner, job_id)

    def job_logs(self, job_id: str) -> str:
        return self.service.job_logs(self._owner, job_id)

    def cancel_job(self, job_id: str) -> None:
        self.service.cancel_job(self._owner, job_id)

    def delete_job(self, job_id: str) -> None:
        self.service.delete_job(self._owner, job_id)

    def close_session(self, session_id: str) -> None:
        self.service.close_session(self._owner, session_id)

    def close(self) -> None:
        self._close(self.close_timeout)

    def _close(self, timeout: float | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.service.close(wait=True, timeout=timeout)
        self._store.close()

    def __enter__(self) -> EmbeddedRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Interrupted (Ctrl-C): hand the jobs over at once instead of waiting for them.
        self._close(0 if isinstance(exc, KeyboardInterrupt) else self.close_timeout)
