"""Job executors: the ``Executor`` protocol and ``LocalExecutor``, which runs the jobs of a store.

``workers`` threads each claim a QUEUED job in the store (compare-and-set, so two processes never
run the same job) and run it:

* a **built-in** (``sampler``/``estimator``) on the thread's warm worker (``worker.py``): a
  long-lived trusted process that imported qiskit-aer once, so a job costs its simulation only;
* an **uploaded program** in a sandbox taken from a pool of pre-warmed ones (``sandbox.py``):
  namespaces, an unprivileged uid, no network, no host files but its job directory, rlimits; one
  job per sandbox, destroyed afterwards with everything it started. Where no sandbox can be made,
  ``programs="sandbox"`` refuses such jobs (``program_refusal``), ``"auto"`` falls back to plain
  child processes and says so once, ``"unsafe"`` uses them by choice.

While a job runs, its thread copies interim results into the store, mirrors the output log, and
stops the job when its ``cost`` (max_execution_time) is spent (→ CANCELLED, "RAN TOO LONG"), when
it is cancelled — by this process or by any other through the database — or when the executor
hands its work over. The clock starts when the job does: after the worker is ready, or when the
sandbox's launcher reports that it starts the program (never during a Python start-up).

Jobs carry the identity of the process that holds them (``runner`` = ``pid@host`` plus the process
start time, against pid reuse). ``runner_alive`` tells whether that process still exists, which is
how the service decides that a job may be re-queued (recovery). ``shutdown`` waits for the jobs this
executor holds, then hands the rest over: their processes killed, jobs back to QUEUED with no
runner, so that the next process that looks at them runs them again.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import select
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from qrt_apply.engine.channel import JobFrames, read_log
from qrt_apply.engine.records import JobRecord
from qrt_apply.engine.runners import register, runner_alive, this_runner
from qrt_apply.engine.sandbox import Limits, Sandbox, SandboxPool, probe
from qrt_apply.engine.store import Store
from qrt_apply.engine.worker import WarmWorker
from qrt_apply.failures import format_failure

__all__ = [
    "LOG_LIMIT",
    "PROGRAM_MODES",
    "Executor",
    "LocalExecutor",
    "is_builtin",
    "runner_alive",
    "this_runner",
]

LOG_LIMIT = 1 << 20  # bytes of output kept as a job's logs (head and tail)
_LOG_KILL = 64 << 20  # a job that writes more output than this is stopped
_RESULT_LIMIT = 64 << 20  # a larger result is refused (it would live in one SQLite row)
_STATUS_EVERY = 0.25  # seconds between checks of the job's row (cancel from another process)
_LOGS_EVERY = 1.0  # seconds between live log updates
_STARTUP_LIMIT = 300  # seconds a sandbox may take to start a program (a busy machine included)
PROGRAM_MODES = ("auto", "sandbox", "unsafe")

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

    def program_refusal(self) -> str | None: ...

    def runner_alive(self, runner: str | None, runner_start: str | None, job_id: str) -> bool: ...

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None: ...


_EXECUTORS: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()


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


_STOPS = {
    "RAN TOO LONG": _Outcome("CANCELLED", reason="RAN TOO LONG"),
    "CANCELLED": _Outcome("CANCELLED"),
    "HANDOVER": _Outcome("HANDOVER"),
}


class _Slot:
    """What one executor thread keeps between jobs: its warm worker."""

    def __init__(self) -> None:
        self.worker: WarmWorker | None = None


class LocalExecutor:
    """Runs jobs of ``store``, ``workers`` at a time, on lazily started threads (``start`` starts
    them, and with ``prewarm`` their workers and sandboxes, at once)."""

    def __init__(
        self,
        store: Store,
        workers: int = 2,
        *,
        python: str | None = None,
        poll_interval: float = 0.05,
        log_limit: int = LOG_LIMIT,
        programs: str = "auto",
        limits: Limits | None = None,
        prewarm: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if programs not in PROGRAM_MODES:
            raise ValueError(f"programs must be one of {', '.join(PROGRAM_MODES)}")
        self.store = store
        self.workers = workers
        self.python = python or sys.executable
        self.poll_interval = poll_interval
        self.log_limit = log_limit
        self.programs = programs
        self.limits = limits or Limits()
        self.prewarm = prewarm
        # Aer's OpenMP threads share the cores between the workers instead of fighting over them
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.runner, self.runner_start = this_runner()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._slots: list[_Slot] = []
        self._held: set[str] = set()  # submitted here and not yet done
        self._cancelled: set[str] = set()
        self._handover = threading.Event()
        self._pool: SandboxPool | None = None
        self._refusal: str | None = None
        self._isolation_known = False
        _EXECUTORS.add(self)
        register(self)

    # -- Executor protocol ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads now; with ``prewarm``, also their workers and the sandbox pool."""
        with self._lock:
            if self._threads:
                return
            self._handover.clear()
            self._slots = [_Slot() for _ in range(self.workers)]
            self._threads = [
                threading.Thread(target=self._work, args=(slot,), name=f"qrt-executor-{i}")
                for i, slot in enumerate(self._slots)
            ]
            for thread in self._threads:
                thread.daemon = True
                thread.start()
            if self.prewarm:
                for slot in self._slots:
                    slot.worker = WarmWorker(self.python, threads=self.threads)
        if self.prewarm:
            self.program_refusal()
            if self._pool is not None:
                self._pool.fill()

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._held.add(job_id)
        self.start()
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

    def program_refusal(self) -> str | None:
        """Why uploaded programs cannot run here (None: they can). Probes the sandbox once."""
        with self._lock:
            if self._isolation_known:
                return self._refusal
            self._isolation_known = True
            isolated = False
            if self.programs != "unsafe":
                reason = probe()
                isolated = reason is None
                if reason is not None and self.programs == "sandbox":
                    self._refusal = (
                        f"this server cannot sandbox uploaded programs ({reason}); it runs "
                        "built-in programs only unless started with --unsafe-no-sandbox"
                    )
                    return self._refusal
                if reason is not None:
                    _log.warning(
                        "uploaded programs run as plain child processes, without a sandbox: %s",
                        reason,
                    )
            self._pool = SandboxPool(
                self.workers,
                python=self.python,
                limits=self.limits,
                isolated=isolated,
                threads=self.threads,
                concurrent=self.workers,
            )
            if isolated and self._pool.cgroups is None:
                _log.warning(
                    "no cgroup for sandboxes here: their memory and process limits count per "
                    "process (rlimits), not per sandbox"
                )
            return None

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
            slots, self._slots = self._slots, []
            if not threads:
                return
            self._handover.set()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
        for slot in slots:
            if slot.worker is not None:
                slot.worker.kill()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
            self._isolation_known = False

    # -- threads -------------------------------------------------------------------------------

    def _work(self, slot: _Slot) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                if self._handover.is_set():
                    self.store.requeue_job(job_id, self.runner, None, None)
                else:
                    self._execute(job_id, slot)
            except Exception as exc:
                _log.exception("executor failure on job %s", job_id)
                # The traceback is qrt's, for the operator's log; the job records what failed.
                # If even this fails the job keeps this (live) runner but is no longer held,
                # which makes it recoverable by the next job() that looks at it.
                text = "the runtime failed to run the job: " + format_failure(exc)
                with contextlib.suppress(Exception):
                    self.store.finish_job(job_id, self.runner, "FAILED", result=text)
            finally:
                with self._lock:
                    self._held.discard(job_id)
                    self._cancelled.discard(job_id)
                    self._lock.notify_all()

    def _execute(self, job_id: str, slot: _Slot) -> None:
        job = self.store.claim_job(job_id, self.runner, self.runner_start)
        if job is None:
            return  # cancelled, deleted, or claimed by another process meanwhile
        if is_builtin(job.program_id):
            outcome, logs = self._run_builtin(job, slot)
        else:
            outcome, logs = self._run_program(job)
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

    def _stopper(self, job: JobRecord, deadline: list[float]) -> Callable[[], str | None]:
        """Why ``job`` must stop now, if it must; ``deadline[0]`` is its clock (inf: not started)."""
        next_status = [time.monotonic() + _STATUS_EVERY]

        def stop() -> str | None:
            now = time.monotonic()
            if now >= deadline[0]:
                return "RAN TOO LONG"
            with self._lock:
                if job.id in self._cancelled:
                    return "CANCELLED"
            if self._handover.is_set():
                return "HANDOVER"
            if now >= next_status[0]:
                next_status[0] = now + _STATUS_EVERY
                if self.store.job_status(job.id) != "RUNNING":
                    return "CANCELLED"  # cancelled or deleted by someone else
            return None

        return stop

    def _run_builtin(self, job: JobRecord, slot: _Slot) -> tuple[_Outcome, str]:
        if slot.worker is None or not slot.worker.alive:
            slot.worker = WarmWorker(self.python, threads=self.threads)
        worker = slot.worker
        deadline = [float("inf")]
        stop = self._stopper(job, deadline)
        reason = worker.wait_ready(stop, self.poll_interval)
        if reason is None:
            deadline[0] = time.monotonic() + job.cost  # the clock starts on a ready worker
            request = {
                "program_id": job.program_id,
                "backend": job.backend,
                "params": job.params or "{}",
                "log_level": job.log_level,
            }
            frame = worker.run(request, stop, self.poll_interval)
            if isinstance(frame, dict):
                logs = str(frame.get("logs") or "")[-self.log_limit :]
                metrics = frame.get("metrics") or {}
                return _Outcome(frame["status"], result=frame["result"], metrics=metrics), logs
            reason = frame
        if reason not in _STOPS:
            _log.error("a built-in worker died running job %s: %s", job.id, worker.stderr_tail())
        worker.kill()
        slot.worker = WarmWorker(self.python, threads=self.threads)  # the old one is dead
        if reason in _STOPS:
            return _STOPS[reason], ""
        return _Outcome("FAILED", result="the job's worker process died"), ""

    def _run_program(self, job: JobRecord) -> tuple[_Outcome, str]:
        program = self.store.get_program(job.program_id)
        if program is None:
            message = f"program {job.program_id} was deleted before the job started"
            return _Outcome("FAILED", result=message), ""
        refusal = self.program_refusal()
        if refusal is not None or self._pool is None:
            return _Outcome("FAILED", result=refusal or "the executor is shut down"), ""
        sandbox = self._pool.take()
        try:
            sandbox.assign(job.id)
            sandbox.go(job.backend, job.log_level, job.cost + 1, program.source, job.params or "{}")
            frames = JobFrames(sandbox.out, 2 * _RESULT_LIMIT)
            try:
                outcome = self._watch(job, sandbox, frames)
                sandbox.kill()
                frames.read()  # what was sent before the end
            except ValueError as exc:  # the job sent too much
                outcome = _Outcome("FAILED", result=str(exc))
            sandbox.kill()
            self.store.add_interim_results(job.id, frames.take_interim())
            logs = read_log(sandbox.log_path, self.log_limit)
            if outcome is None:
                outcome = _program_outcome(frames, sandbox.proc.returncode, logs)
                if outcome.status == "FAILED" and sandbox.cgroup is not None:
                    if sandbox.cgroup.ran_out_of_memory():
                        limit = self.limits.memory_mb
                        outcome.result += (
                            f"\nThe job ran out of its sandbox's {limit} MiB of memory."
                        )
            return outcome, logs
        finally:
            sandbox.destroy()

    def _watch(self, job: JobRecord, sandbox: Sandbox, frames: JobFrames) -> _Outcome | None:
        """Follow the sandbox until it exits (None) or must be stopped (the reason)."""
        # Until the launcher says the program starts, only a generous bound for a start-up that
        # never ends applies; from then on, the job's own max_execution_time.
        deadline = [time.monotonic() + job.cost + _STARTUP_LIMIT]
        clock_started = False
        stop = self._stopper(job, deadline)
        next_logs = time.monotonic()
        logged_size = 0
        while sandbox.proc.poll() is None:
            frames.read()
            if frames.started and not clock_started:
                clock_started = True
                deadline[0] = time.monotonic() + job.cost
            self.store.add_interim_results(job.id, frames.take_interim())
            reason = stop()
            if reason is not None:
                return _STOPS[reason]
            now = time.monotonic()
            if now >= next_logs:
                next_logs = now + _LOGS_EVERY
                size = sandbox.log_path.stat().st_size
                if size > _LOG_KILL:
                    return _Outcome("FAILED", result=f"job output exceeded {_LOG_KILL} bytes")
                if size != logged_size:
                    logged_size = size
                    self.store.set_logs(job.id, read_log(sandbox.log_path, self.log_limit))
            select.select([sandbox.out], [], [], self.poll_interval)
        return None


def _program_outcome(frames: JobFrames, returncode: int | None, logs: str) -> _Outcome:
    result = frames.result()
    if result is None:
        tail = logs[-4000:]
        return _Outcome(
            "FAILED",
            result=f"{tail}\nJob process ended without a result (exit code {returncode}).",
        )
    return _Outcome(result["status"], result=result["result"], metrics=result["metrics"])
