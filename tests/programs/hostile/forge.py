"""Hostile: make the server read a host file as this job's result or interim results.

The job directory is the working directory (/job in a sandbox).
``kind`` "symlink": ``<job dir>/<name>`` becomes a symlink to ``target`` (a path on the host);
"fifo": ``<job dir>/<name>`` becomes a FIFO. With ``exit``, the process then ends at once, so that the
launcher never writes its own result.json over the trap."""

import os
import time


def main(backend, user_messenger, name, kind, target=None, exit=False, wait=0.0, **kwargs):
    path = os.path.join(os.getcwd(), name)
    if os.path.lexists(path):
        os.unlink(path)
    if kind == "symlink":
        os.symlink(target, path)
    else:
        os.mkfifo(path)
    report = {"name": name, "kind": kind, "target": target, "exists": os.path.lexists(path)}
    print(report, flush=True)
    time.sleep(wait)
    if exit:
        os._exit(0)
    return report
