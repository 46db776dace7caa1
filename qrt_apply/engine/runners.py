"""Who runs a job: runner identities (``pid@host`` plus the process start time) and whether the
process behind one is still alive, which is how a job of a dead process is known to be recoverable.

A job held by this very process is alive only while one of the registered holders (the executors
of this process) says it holds it; ``register`` adds one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import weakref
from pathlib import Path
from typing import Protocol

__all__ = ["Holder", "kill_group", "register", "runner_alive", "this_runner"]


class Holder(Protocol):
    def holds(self, job_id: str) -> bool: ...


_HOLDERS: weakref.WeakSet[Holder] = weakref.WeakSet()  # type: ignore[type-var]


def register(holder: Holder) -> None:
    """Count ``holder``'s jobs as alive in this process (for as long as it exists)."""
    _HOLDERS.add(holder)


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
        return any(holder.holds(job_id) for holder in list(_HOLDERS))
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


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group that ``proc`` leads (started with ``start_new_session``), and
    reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
