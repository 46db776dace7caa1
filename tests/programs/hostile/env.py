"""Hostile: look for the server's environment (and its secret) from inside a job.

Returns everything it could read, so that a leak shows up in the job's result; prints it too, so
that it shows up in the logs."""

import os
import subprocess
import sys


def _read(path):
    try:
        with open(path, "rb") as stream:
            return {"ok": True, "value": stream.read().decode(errors="replace")}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main(backend, user_messenger, server_pid, **kwargs):
    # a control: a fresh child of this job, whose environ the reading below must find
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        env={"PROBE_CONTROL": "visible"},
        stdout=subprocess.PIPE,
    )
    try:
        child.stdout.readline()  # it has exec'd: its environ is its own (and readable) now
        return _look(server_pid, child.pid)
    finally:
        child.kill()
        child.wait()


def _look(server_pid, child_pid):
    paths = {
        "/proc/self/environ",
        "/proc/1/environ",
        f"/proc/{os.getppid()}/environ",
        f"/proc/{server_pid}/environ",
    }
    paths.update(f"/proc/{pid}/environ" for pid in os.listdir("/proc") if pid.isdigit())
    report = {
        "environ": dict(os.environ),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "control": child_pid,
        "files": {path: _read(path) for path in sorted(paths)},
    }
    print(report, flush=True)
    return report
