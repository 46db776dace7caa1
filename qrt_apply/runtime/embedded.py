"""The embedded runtime: the ``Runtime`` protocol in-process, over ``engine/service.py``.

State lives in ``data_dir/runtime.db`` (SQLite); the implicit user is ``local``. Construction only
opens the database, so ``qrt plan`` pays nothing for it: executor threads start on the first
``run()``, or when ``job()`` finds an unfinished job whose runner process is gone and re-queues it
(recovery). Several processes may share one data directory; a job is re-queued only when the
process holding it is dead.

``close()`` lets the jobs this process holds finish for up to ``close_timeout`` seconds (None: as
long as they take), then hands the rest over: their child processes are killed and the jobs go back
to QUEUED with no runner, so the next process that looks at one (``qrt refresh``) runs it again.
With ``detach_on_close`` (``qrt apply --no-wait``: ``close_timeout=0``) the jobs handed over are
run at once by a detached runner process (``engine/runner.py``), so the command returns while they
still run. An interrupted process (Ctrl-C) hands its jobs over at once and starts no runner.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
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
        detach_on_close: bool = False,
        read_only: bool = False,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        ignore = data_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# qrt's embedded runtime state; never committed\n*\n")
        self.data_dir = data_dir
        self.close_timeout = close_timeout
        self.detach_on_close = detach_on_close
        self._workers = workers
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

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
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
        created_after: str | None = None,
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
            created_after=created_after,
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

    def hand_over_on_close(self, *, detach: bool) -> None:
        """Make ``close()`` hand the jobs over at once; with ``detach`` a detached runner then runs
        them (``apply --no-wait``), without it they wait for the next apply or refresh (Ctrl-C)."""
        self.close_timeout = 0
        self.detach_on_close = detach

    def close(self) -> None:
        self._close(self.close_timeout, detach=self.detach_on_close)

    def _close(self, timeout: float | None, *, detach: bool) -> None:
        if self._closed:
            return
        self._closed = True
        interrupted = False
        if timeout != 0:
            try:
                self.service.close(wait=True, timeout=timeout)
            except KeyboardInterrupt:
                interrupted = True  # Ctrl-C while waiting for the jobs: hand them over now
        with _sigint_held_back() as held_back:
            # A Ctrl-C in the middle would leave jobs half handed over (they would wait for
            # recovery), and the hand-over takes a moment only: the Ctrl-C is raised after it.
            self.service.close(wait=False)
            if detach and not interrupted and not held_back and self._handed_over():
                from qrt_apply.engine import runner

                runner.start(self.data_dir, workers=self._workers)
            self._store.close()
        if interrupted:
            raise KeyboardInterrupt

    def _handed_over(self) -> bool:
        return any(job.runner is None for job in self._store.unfinished_jobs())

    def __enter__(self) -> EmbeddedRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, KeyboardInterrupt):
            # Interrupted (Ctrl-C): hand the jobs over at once; no runner starts in the background.
            self._close(0, detach=False)
        else:
            self.close()


@contextlib.contextmanager
def _sigint_held_back() -> Iterator[list[int]]:
    """Defer SIGINT for the body; yields the list of signals held back, raised again at the end
    (so that the usual handler turns it into KeyboardInterrupt). Only the main thread receives
    signals, so elsewhere this does nothing."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)
