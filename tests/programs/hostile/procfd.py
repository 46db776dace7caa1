"""Hostile: reach the server's store through /proc/<pid>/fd of every process it can see."""

import os


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as stream:
        return stream.read().replace(b"\0", b" ").decode(errors="replace")


def _open_rw(path):
    # O_NONBLOCK: a FIFO or pipe must not block; nothing is written
    os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY))
    return "opened read-write"


def main(backend, user_messenger, server_pid, **kwargs):
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    processes = {}
    for pid in pids:
        entry = {"cmdline": attempt(lambda pid=pid: _cmdline(pid)), "fds": {}}
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError as exc:
            entry["fd_error"] = f"{type(exc).__name__}: {exc}"
            fds = []
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            entry["fds"][fd] = {
                "link": attempt(lambda path=path: os.readlink(path)),
                "rw": attempt(lambda path=path: _open_rw(path)),
            }
        processes[str(pid)] = entry
    return {
        "self": os.getpid(),
        "pids": pids,
        "processes": processes,
        "server_visible": os.path.exists(f"/proc/{server_pid}"),
        "server_fds": attempt(lambda: os.listdir(f"/proc/{server_pid}/fd")),
        "server_root": attempt(lambda: os.listdir(f"/proc/{server_pid}/root")),
        "server_signal_0": attempt(lambda: os.kill(server_pid, 0)),
    }
