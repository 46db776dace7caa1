"""Hostile: kill the server, its process group, its workers, and everything else it may signal."""

import os
import signal


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main(backend, user_messenger, server_pid, victims=(), **kwargs):
    visible = os.path.exists(f"/proc/{server_pid}")
    report = {"uid": os.getuid(), "pid": os.getpid(), "server_visible": visible}
    report["kill_server"] = attempt(lambda: os.kill(server_pid, signal.SIGKILL))
    report["killpg_server"] = attempt(lambda: os.killpg(server_pid, signal.SIGKILL))
    report["kill_victims"] = {
        str(pid): attempt(lambda pid=pid: os.kill(pid, signal.SIGKILL)) for pid in victims
    }
    if os.getuid() == 0 or visible:
        # not sandboxed: kill(-1) would hit every process of the host; the test fails on this
        report["kill_all"] = {"ok": False, "error": "refused: this job is not sandboxed"}
        report["refused"] = True
    else:
        report["kill_all"] = attempt(lambda: os.kill(-1, signal.SIGKILL))
    return report
