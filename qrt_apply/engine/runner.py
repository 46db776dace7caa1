"""The embedded runtime's detached job runner: ``python -m qrt_apply.engine.runner DATA_DIR``.

``qrt apply --no-wait`` on the embedded runtime hands its jobs over when it exits (QUEUED, no
runner) and calls :func:`start`, which launches this module fully detached (its own session, no
terminal, no inherited descriptors), so the command returns at once while the jobs still run.

The runner holds an exclusive ``flock`` on ``DATA_DIR/runner.lock`` (a second runner exits at
once) and writes its pid there. It then loops: claim every unfinished job whose runner process is
dead (``RuntimeService.recover``, a compare-and-set, so each job is claimed by one process only),
wait until they are done, claim again, and exit when nothing was claimed. ``qrt refresh`` only
collects the results, and still recovers the jobs itself if the runner died. SIGTERM/SIGINT hand
the runner's jobs over again, as any closing runtime does.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import IO

from qrt_apply.engine.executor import LocalExecutor
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store

__all__ = ["LOCK_FILE", "LOG_FILE", "main", "run", "runner_pid", "start"]

LOCK_FILE = "runner.lock"
LOG_FILE = "runner.log"
_DB_FILE = "runtime.db"  # the embedded runtime's store (runtime/embedded.py DB_FILE)
_MAX_CLAIMS = 3  # a job recovered more often than this by one runner is left to `qrt refresh`
_LOG_LIMIT = 1 << 20  # bytes; a larger log is started afresh by the next runner
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def runner_pid(data_dir: Path) -> int | None:
    """The pid of the runner working on ``data_dir``, or None when no runner holds the lock.

    Probing takes the lock for an instant, so a runner starting at that very moment exits at
    once; it would find nothing to do only if the prober is about to run the jobs itself.
    """
    path = data_dir / LOCK_FILE
    try:
        handle = path.open("r")
    except FileNotFoundError:
        return None
    with handle:
        if _try_lock(handle):
            return None  # closing the handle releases the probe's lock
        text = handle.read().strip()
    return int(text) if text.isdigit() else None


def start(data_dir: Path, *, workers: int = 2) -> int:
    """Launch a detached runner on ``data_dir``; returns its pid without waiting for it."""
    log_path = data_dir / LOG_FILE
    mode = "wb" if log_path.exists() and log_path.stat().st_size > _LOG_LIMIT else "ab"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The same package as this process, whether qrt is installed or run from a checkout.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    with log_path.open(mode) as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qrt_apply.engine.runner",
                str(data_dir),
                "--workers",
                str(workers),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=env,
            close_fds=True,  # above all not the apply lock's descriptor
            start_new_session=True,  # no terminal: Ctrl-C and hang-ups of the shell never reach it
        )
    # Reap it if it ends while this process still lives (no zombie in a long-lived caller);
    # once this process has exited, init does.
    threading.Thread(target=process.wait, name="qrt-runner-reaper", daemon=True).start()
    return process.pid


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through run()'s finally: the jobs are handed over


def _recoverable(service: RuntimeService) -> bool:
    """Whether some unfinished job has no live runner (handed over, or its process died)."""
    return any(
        not service.executor.runner_alive(job.runner, job.runner_start, job.id)
        for job in service.store.unfinished_jobs()
    )


def run(data_dir: Path, *, workers: int = 2) -> int:
    """Run the handed-over jobs of ``data_dir`` until none are left; returns how many it ran."""
    with (data_dir / LOCK_FILE).open("a+") as handle:
        if not _try_lock(handle):
            return 0  # another runner is at work; it also picks up what brought us here
        store = Store(data_dir / _DB_FILE)
        executor = LocalExecutor(store, workers=workers)
        service = RuntimeService(store, executor)
        claims: Counter[str] = Counter()
        try:
            while True:
                handle.truncate(0)
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                # Each round claims the jobs handed over since the last one and waits for them;
                # every job is bounded by its max_execution_time.
                while claimed := service.recover():
                    claims.update(claimed)
                    if max(claims[job] for job in claimed) > _MAX_CLAIMS:
                        # Only an executor failure brings a job back to us again and again.
                        print(f"qrt runner: giving up on job(s) {', '.join(claimed)}", flush=True)
                        return len(claims)  # the finally hands them over
                    executor.wait_idle()
                # A process that handed jobs over after our last recover() but before we let go
                # of the lock saw it held and left them to us: look once more after letting go.
                fcntl.flock(handle, fcntl.LOCK_UN)
                # Done when nothing is left, or when a newer runner took the lock meanwhile.
                if not _recoverable(service) or not _try_lock(handle):
                    return len(claims)
        finally:
            service.close(wait=False)  # only a signal or an error leaves jobs held here
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qrt_apply.engine.runner",
        description="Run the handed-over jobs of an embedded runtime's data directory, then exit.",
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.data_dir / _DB_FILE).is_file():
        parser.error(f"no embedded runtime in {args.data_dir} (no {_DB_FILE})")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    ran = run(args.data_dir, workers=max(1, args.workers))
    print(f"qrt runner {os.getpid()}: ran {ran} job(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
