"""The lockfile's journal: one JSON line per step (the full new record of one address, its
removal, or the fields a step changed in it), appended by an apply instead of rewriting ``qrt.lock``; fsynced only where a step must
survive a machine crash (before a submission), and replayed by the next load after a crash.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qrt_apply.errors import LockfileError
from qrt_apply.fileio import fsync_dir

__all__ = ["SECTIONS", "Journal", "journal_line", "read_journal"]

SECTIONS = ("programs", "jobs")


class Journal:
    """The append-only file of one Lockfile's steps. ``append`` runs under the Lockfile's guard;
    ``sync`` outside it, so one fsync covers every line appended before it (threads share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._appended = 0
        self._synced = 0
        self._new_file = False
        self._sync_guard = threading.Lock()

    def append(self, line: bytes) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._new_file = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        view = memoryview(line)
        while view:  # one write() in practice; the loop covers a short write
            view = view[os.write(self._fd, view) :]
        self._appended += 1
        return self._appended

    def sync(self, upto: int | None = None) -> None:
        """Make every line up to number ``upto`` (default: all) survive a machine crash."""
        with self._sync_guard:
            mark = self._appended
            if self._fd is None or self._synced >= (mark if upto is None else upto):
                return
            os.fsync(self._fd)
            if self._new_file:
                fsync_dir(self.path.parent)
                self._new_file = False
            self._synced = mark

    def truncate(self) -> None:
        """Empty the journal once qrt.lock holds all it says (qrt.lock is durable by then)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

    def remove(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path.parent)


def journal_line(
    section: str, address: str | None, record: Any, *, fields: Mapping[str, Any] | None = None
) -> bytes:
    """One step: ``record`` replaces the address's record, or ``fields`` are set in it."""
    entry: dict[str, Any] = {"section": section, "address": address}
    if fields is None:
        entry["record"] = record
    else:
        entry["fields"] = fields
    text = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's intact entries. Everything from the first damaged line on is dropped: a line
    torn by a crash mid-write, or a tail a machine crash lost. Only lines after the last fsync can
    be damaged, and those are the steps that need not survive one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LockfileError(f"{path} cannot be read: {exc}") from None
    entries = []
    for line in raw.split(b"\n")[:-1]:  # the last piece has no newline: empty, or torn
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            break
        if not isinstance(entry, dict) or not _valid_entry(entry):
            break
        entries.append(entry)
    return entries


def _valid_entry(entry: Mapping[str, Any]) -> bool:
    address_ok = entry.get("section") == "target" or (
        entry.get("section") in SECTIONS and isinstance(entry.get("address"), str)
    )
    if "fields" in entry:
        return address_ok and entry["section"] != "target" and isinstance(entry["fields"], dict)
    return address_ok and isinstance(entry.get("record"), (dict, type(None)))
