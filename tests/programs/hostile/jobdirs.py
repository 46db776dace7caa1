"""Hostile: read another job's directory (its host path is given) or find it any other way."""

import glob
import os
import time


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _read(path):
    with open(path) as stream:
        return stream.read()


def _find(name, budget):
    """Files called ``name`` anywhere on the visible file system (/proc aside)."""
    found, deadline = [], time.monotonic() + budget
    for root, dirs, files in os.walk("/"):
        if root == "/":
            dirs[:] = [entry for entry in dirs if entry != "proc"]
        found += [os.path.join(root, name) for entry in files if entry == name]
        if time.monotonic() > deadline:
            return found, False
    return found, True


def main(backend, user_messenger, victim, marker, budget=60.0, **kwargs):
    here = os.getcwd()  # the job directory: /job in a sandbox
    report = {
        "victim_listdir": attempt(lambda: os.listdir(victim)),
        "victim_marker": attempt(lambda: _read(os.path.join(victim, marker))),
        "victim_parent": attempt(lambda: os.listdir(os.path.dirname(victim))),
        "sandbox_glob": glob.glob("/tmp/qrt-sandbox-*") + glob.glob("/tmp/qrt-sandbox-*/job/*"),
        "tmp": attempt(lambda: os.listdir("/tmp")),
        "job": os.listdir(here),
        "job_parent": attempt(lambda: sorted(os.listdir(os.path.join(here, "..")))),
        "job_grandparent": attempt(lambda: sorted(os.listdir(os.path.join(here, "../..")))),
        "proc_roots": {
            path: attempt(lambda path=path: _read(path))
            for path in glob.glob("/proc/[0-9]*/root/job/" + marker)
        },
    }
    report["marker_anywhere"], report["search_complete"] = _find(marker, budget)
    return report
