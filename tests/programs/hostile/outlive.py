"""Hostile: leave a process behind that outlives the job (double fork, setsid, signals ignored).

The grandchild's command line carries ``token`` so that the test can look for it on the host."""

import os
import signal
import sys
import time


def _find(token):
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as stream:
                if token.encode() in stream.read():
                    return int(name)
        except OSError:
            continue
    return None


def main(backend, user_messenger, token, linger=0.0, **kwargs):
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.setsid()
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_IGN)  # ignored handlers survive exec
                code = "import time; time.sleep(120)"
                os.execv(sys.executable, [sys.executable, "-c", code, token])
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    grandchild, deadline = None, time.monotonic() + 30
    while grandchild is None and time.monotonic() < deadline:
        grandchild = _find(token)
        time.sleep(0.05)
    report = {"grandchild": grandchild, "linger": linger}
    user_messenger.publish(report)
    time.sleep(linger)
    return report
