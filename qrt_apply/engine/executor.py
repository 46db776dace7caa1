"""Job executors: the ``Executor`` protocol and ``LocalExecutor``, which runs every job in a child process.

A worker thread claims a QUEUED job in the store (compare-and-set, so two processes never run the
same job), writes a job directory (``job.json``, ``params.json``, ``program.py``) and starts
``python -m qrt_apply.engine.childrun JOBDIR`` in its own process group. While the child runs, the
worker copies ``interim.jsonl`` lines into the store, mirrors the output log, and kills the group
when the job's ``cost`` (max_execution_time) is spent (→ CANCELLED, "RAN TOO LONG"), when the job
is cancelled — by this process or by any other through the database — or when the executor hands
its work over. The child's ``result.json`` decides COMPLETED or FAILED.

Jobs carry the identity of the process that holds them (``runner`` = ``pid@host`` plus the process
start time, against pid reuse). ``runner_alive`` tells whether that process still exists, which is
how the service decides that a job may be re-queued (recovery). ``shutdown`` waits for the jobs this
executor holds, then hands the rest over: children killed, jobs back to QUEUED with no runner, so
that the next process that looks at them runs them again.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from qrt_apply.engine.records import JobRecord
from qrt_apply.engine.store import Store

__all__ = [
    "LOG_LIMIT",
    "Executor",
    "LocalExecutor",
    "is_builtin",
    "runner_alive",
    "this_runner",
]

LOG_LIMIT = 1 << 20  # bytes of output kept as a job's logs (head and tail)
_LOG_HEAD = 64 << 10  # at most this much of the head is kept when the log is cut
_LOG_KILL = 64 << 20  # a job that writes more output than this is stopped
_RESULT_LIMIT = 64 << 20  # a larger result is refused (it would live in one SQLite row)
_STATUS_EVERY = 0.25  # seconds between checks of the job's row (cancel from another process)
_LOGS_EVERY = 1.0  # seconds between live log updates
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

_log = logging.getLogger(__name__)


def is_builtin(program_id: str) -> bool:
    """Whether ``program_id`` names a built-in program (``sampler``, ``estimator``)."""
    from qrt_apply.engine.primitives import BUILTIN_PROGRAMS

    return program_id in BUILTIN_PROGRAMS


class Executor(Protocol):
    """Runs persisted jobs. ``runner``/``runner_start`` identify the process holding a job."""

    runner: str
    runner_start: str | None

    def submit(self, job_id: str) -> None: ...

    def cancel(self, job_id: str) -> None: ...

    def runner_alive(self, runner: str | None, runner_start: str | None, job_id: str) -> bool: ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None: ...


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) of a Linux process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def this_runner() -> tuple[str, str | None]:
    """This process's runner identity: (``pid@host``, start time or None off Linux)."""
    stat = _proc_stat(os.getpid())
    return f"{os.getpid()}@{socket.gethostname()}", None if stat is None else stat[1]


_EXECUTORS: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()


def runner_alive(runner: str | None, runner_start: str | None, job_id: str) -> bool:
    """Whether the process ``runner`` may still be executing (or about to execute) ``job_id``.

    No runner (a handed-over job) is dead. A runner on another host cannot be checked and counts
    as alive. In this process, the job is alive only if one of our executors holds it.
    """
    if runner is None:
        return False
    pid_text, _, host = runner.partition("@")
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return any(executor.holds(job_id) for executor in list(_EXECUTORS))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return True  # not Linux: the signal probe is all we have
    state, start = stat
    return state not in ("Z", "X") and (runner_start is None or start == runner_start)


@atexit.register
def _hand_over_at_exit() -> None:
    for executor in list(_EXECUTORS):
        executor.shutdown(wait=False)


@dataclass
class _Outcome:
    status: str  # COMPLETED | FAILED | CANCELLED | HANDOVER
    reason: str | None = None
    result: str = ""
    metrics: dict[str, object] = field(default_factory=dict)


def _read_log(path: Path, limit: int) -> str:
    """The output log, keeping its head and tail when it is larger than ``limit`` bytes."""
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(0)
            if size <= limit:
                data = stream.read()
            else:
                head = stream.read(min(_LOG_HEAD, limit // 4))
                stream.seek(size - (limit - len(head)))
                skipped = size - limit
                data = head + f"\n[... {skipped} bytes of output skipped ...]\n".encode()
                data += stream.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


class _Interim:
    """Incremental reader of the child's interim.jsonl (one JSON string per complete line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


class LocalExecutor:
    """Runs jobs of ``store`` in child processes, ``workers`` at a time, on lazily started threads."""

    def __init__(
        self,
        store: Store,
        workers: int = 2,
        *,
        python: str | None = None,
        poll_interval: float = 0.05,
        log_limit: int = LOG_LIMIT,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.store = store
        self.workers = workers
        self.python = python or sys.executable
        self.poll_interval = poll_interval
        self.log_limit = log_limit
        self.runner, self.runner_start = this_runner()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._held: set[str] = set()  # submitted here and not yet done
        self._cancelled: set[str] = set()
        self._handover = threading.Event()
        _EXECUTORS.add(self)

    # -- Executor protocol ---------------------------------------------------------------------

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._held.add(job_id)
            if not self._threads:
                self._handover.clear()
                self._threads = [
                    threading.Thread(target=self._work, name=f"qrt-executor-{i}", daemon=True)
                    for i in range(self.workers)
                ]
                for thread in self._threads:
                    thread.start()
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._held:
                self._cancelled.add(job_id)

    def holds(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._held

    def runner_alive(self, runner: str | None, runner_start: str | None, job_id: str) -> bool:
        return runner_alive(runner, runner_start, job_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every job submitted here is done; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._held, timeout)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop the workers. With ``wait``, first let held jobs finish (up to ``timeout`` s);
        whatever is still held is then handed over: killed and re-queued with no runner."""
        if wait:
            self.wait_idle(timeout)
        with self._lock:
            threads, self._threads = self._threads, []
            if not threads:
                return
            self._handover.set()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    # -- workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                if self._handover.is_set():
                    self.store.requeue_job(job_id, self.runner, None, None)
                else:
                    self._execute(job_id)
            except Exception:
                _log.exception("executor failure on job %s", job_id)
                # If even this fails the job keeps this (live) runner but is no longer held,
                # which makes it recoverable by the next job() that looks at it.
                with contextlib.suppress(Exception):
                    self.store.finish_job(
                        job_id, self.runner, "FAILED", result=traceback.format_exc()
                    )
            finally:
                with self._lock:
                    self._held.discard(job_id)
                    self._cancelled.discard(job_id)
                    self._lock.notify_all()

    def _execute(self, job_id: str) -> None:
        job = self.store.claim_job(job_id, self.runner, self.runner_start)
        if job is None:
            return  # cancelled, deleted, or claimed by another process meanwhile
        with tempfile.TemporaryDirectory(prefix=f"qrt-job-{job_id}-") as tmp:
            outcome, logs = self._run_child(job, Path(tmp))
        if outcome.status == "HANDOVER":
            self.store.requeue_job(job_id, self.runner, None, None)
            return
        self.store.finish_job(
            job_id,
            self.runner,
            outcome.status,
            reason=outcome.reason,
            result=outcome.result,
            logs=logs,
            metrics=outcome.metrics,
        )

    def _prepare(self, job: JobRecord, jobdir: Path) -> bool:
        """Write the job directory; False when the job's program no longer exists."""
        builtin = is_builtin(job.program_id)
        if not builtin:
            program = self.store.get_program(job.program_id)
            if program is None:
                return False
            (jobdir / "program.py").write_text(program.source, encoding="utf-8")
        (jobdir / "params.json").write_text(job.params or "{}", encoding="utf-8")
        spec = {
            "job_id": job.id,
            "program_id": job.program_id,
            "builtin": builtin,
            "backend": job.backend,
            "log_level": job.log_level,
            "parent_pid": os.getpid(),
        }
        (jobdir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
        return True

    def _spawn(self, jobdir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        return subprocess.Popen(
            [self.python, "-m", "qrt_apply.engine.childrun", str(jobdir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=jobdir,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
        )

    def _run_child(self, job: JobRecord, jobdir: Path) -> tuple[_Outcome, str]:
        if not self._prepare(job, jobdir):
            message = f"program {job.program_id} was deleted before the job started"
            return _Outcome("FAILED", result=message), ""
        log_path = jobdir / "output.log"
        interim = _Interim(jobdir / "interim.jsonl")
        with log_path.open("wb") as log:
            proc = self._spawn(jobdir, log)
        try:
            outcome = self._watch(job, proc, log_path, interim)
        finally:
            _kill_group(proc)  # also whatever the program left running in its group
        self.store.add_interim_results(job.id, interim.read())
        logs = _read_log(log_path, self.log_limit)
        if outcome is None:
            outcome = self._child_outcome(jobdir, proc.returncode, logs)
        return outcome, logs

    def _watch(
        self, job: JobRecord, proc: subprocess.Popen[bytes], log_path: Path, interim: _Interim
    ) -> _Outcome | None:
        """Follow the child until it exits (None) or must be stopped (the reason)."""
        deadline = time.monotonic() + job.cost
        next_status = next_logs = time.monotonic()
        logged_size = 0
        while proc.poll() is None:
            self.store.add_interim_results(job.id, interim.read())
            now = time.monotonic()
            with self._lock:
                cancelled = job.id in self._cancelled
            if now >= deadline:
                return _Outcome("CANCELLED", reason="RAN TOO LONG")
            if cancelled:
                return _Outcome("CANCELLED")
            if self._handover.is_set():
                return _Outcome("HANDOVER")
            if now >= next_status:
                next_status = now + _STATUS_EVERY
                if self.store.job_status(job.id) != "RUNNING":
                    return _Outcome("CANCELLED")  # cancelled or deleted by someone else
            if now >= next_logs:
                next_logs = now + _LOGS_EVERY
                size = log_path.stat().st_size
                if size > _LOG_KILL:
                    return _Outcome("FAILED", result=f"job output exceeded {_LOG_KILL} bytes")
                if size != logged_size:
                    logged_size = size
                    self.store.set_logs(job.id, _read_log(log_path, self.log_limit))
            time.sleep(self.poll_interval)
        return None

    @staticmethod
    def _child_outcome(jobdir: Path, returncode: int, logs: str) -> _Outcome:
        path = jobdir / "result.json"
        try:
            if path.stat().st_size > _RESULT_LIMIT:
                return _Outcome("FAILED", result=f"the job's result exceeds {_RESULT_LIMIT} bytes")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = logs[-4000:]
            return _Outcome(
                "FAILED",
                result=f"{tail}\nJob process ended without a result (exit code {returncode}).",
            )
        return _Outcome(data["status"], result=data["result"], metrics=data.get("metrics", {}))
