"""Hostile: find the server's data directory and its SQLite files, and open them read-write."""

import glob
import os
import sqlite3
import time


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _head(path):
    with open(path, "rb") as stream:
        return stream.read(64).hex()


def _open_rw(path):
    os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY))
    return "opened read-write"


def _sqlite_rw(path):
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=1)
    try:
        return connection.execute("SELECT name FROM sqlite_master").fetchall()
    finally:
        connection.close()


def _walk(budget):
    """Every SQLite-looking file on the visible file system (/proc aside), within ``budget`` s."""
    found, deadline = [], time.monotonic() + budget
    for root, dirs, files in os.walk("/"):
        if root == "/":
            dirs[:] = [name for name in dirs if name != "proc"]
        found += [
            os.path.join(root, name)
            for name in files
            if name.endswith((".db", ".db-wal", ".db-shm", ".sqlite", ".sqlite3"))
        ]
        if time.monotonic() > deadline:
            return found, False
    return found, True


def main(backend, user_messenger, data_dir, budget=60.0, **kwargs):
    report = {"listdir": attempt(lambda: os.listdir(data_dir))}
    for name in ("runtime.db", "server.db", "runtime.db-wal"):
        path = os.path.join(data_dir, name)
        report[f"read {name}"] = attempt(lambda path=path: _head(path))
        report[f"rw {name}"] = attempt(lambda path=path: _open_rw(path))
        report[f"sqlite {name}"] = attempt(lambda path=path: _sqlite_rw(path))
    report["db_files"], report["walk_complete"] = _walk(budget)
    links = {}
    for fd in glob.glob("/proc/*/fd/*"):
        try:
            links[fd] = os.readlink(fd)
        except OSError as exc:
            links[fd] = f"{type(exc).__name__}: {exc}"
    report["fd_links"] = links
    report["fd_dirs"] = {
        path: attempt(lambda path=path: os.listdir(path)) for path in glob.glob("/proc/*/fd")
    }
    return report
