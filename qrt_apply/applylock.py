"""The apply lock: one qrt apply (or refresh, import, mv, forget) at a time per project.

``.qrt/apply.lock`` is an OS file lock, so it is released even when its holder dies;
``.qrt/apply.lock.json`` beside it says who holds it (pid, host, since) for the error a second
apply gets and for ``qrt unlock``. Re-exported by :mod:`qrt_apply.lockfile`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qrt_apply.errors import LockfileError
from qrt_apply.fileio import atomic_write

__all__ = ["ApplyLock"]


class ApplyLock:
    """An exclusive lock held for the whole of an apply; released even if the process dies."""

    # State dirs whose lock this process holds: the OS lock is per open file, so a second acquire
    # from the same process would wait for itself.
    _held: set[Path] = set()

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "apply.lock"
        self.info_path = state_dir / "apply.lock.json"
        self._key = state_dir.resolve()

    @contextmanager
    def hold(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = self.holder()
            who = (
                f" (held by pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')})"
                if holder
                else ""
            )
            raise LockfileError(
                f"another qrt apply is running on this project{who}; wait for it, or run "
                "`qrt unlock` if it is gone"
            ) from None
        try:
            atomic_write(
                self.info_path,
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                ),
            )
            ApplyLock._held.add(self._key)
            yield
        finally:
            ApplyLock._held.discard(self._key)
            try:
                self.info_path.unlink()
            except FileNotFoundError:
                pass
            lock.release()

    @contextmanager
    def try_hold(self) -> Iterator[bool]:
        """Whether this process holds the lock (already, or now for the block); never waits."""
        if self._key in ApplyLock._held:
            yield True
            return
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.info_path.read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def held_by_live_process(self) -> bool:
        """Whether some process holds the lock now (the OS drops it when its holder dies)."""
        from filelock import FileLock, Timeout

        if not self.path.exists():
            return False
        probe = FileLock(str(self.path), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            return True
        probe.release()
        return False

    def force_release(self) -> bool:
        removed = False
        for path in (self.info_path, self.path):
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                pass
        return removed
