"""Hostile: fork ``attempts`` times, every child sleeping, and see how far it gets."""

import os
import resource
import signal
import time


def main(backend, user_messenger, attempts=200, **kwargs):
    pids, error = [], None
    started = time.monotonic()
    try:
        for _ in range(attempts):
            try:
                pid = os.fork()
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
            if pid == 0:
                try:
                    time.sleep(60)
                finally:
                    os._exit(0)
            pids.append(pid)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (10_000, 10_000))
        raised = "raised"
    except (ValueError, OSError) as exc:
        raised = f"{type(exc).__name__}: {exc}"
    return {
        "forked": len(pids),
        "error": error,
        "seconds": time.monotonic() - started,
        "RLIMIT_NPROC": resource.getrlimit(resource.RLIMIT_NPROC),
        "raise_limit": raised,
    }
