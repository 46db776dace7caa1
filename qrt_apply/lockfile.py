"""``qrt.lock``: what qrt did, per address, written deterministically and atomically.

Layout (JSON, sorted keys, two-space indent, trailing newline)::

    {"version": 1,
     "target": {"channel": ..., "url": ..., "instance": ...},
     "programs": {"program.NAME": {id, name, source, content_digest, metadata_digest, visibility, ...}},
     "jobs": {"job.BATCH/JOB": {id, digest, status, backend, session_id, created, ended,
                                submission_tag, result | result_ref, interim_results, history}}}

One entry per address keeps merges of unrelated changes clean. A result larger than
``INLINE_RESULT_LIMIT`` bytes of canonical JSON goes to ``qrt-results/<sha256>.json`` beside the
lockfile and is referenced by digest. Writes replace the file atomically (write, fsync, rename), so
the lockfile always parses, whatever moment an apply dies at. ``ApplyLock`` keeps two applies from
interleaving.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qrt_apply.errors import LockfileError
from qrt_apply.model import canonical_json, sha256_hex
from qrt_apply.runtime.base import Target

__all__ = ["INLINE_RESULT_LIMIT", "RESULTS_DIR", "ApplyLock", "Lockfile", "atomic_write"]

INLINE_RESULT_LIMIT = 64 * 1024
RESULTS_DIR = "qrt-results"
VERSION = 1
HISTORY_LIMIT = 10


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Lockfile:
    """The lockfile's data with thread-safe updates; every ``save`` is one atomic replace."""

    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self._data: dict[str, Any] = data or {
            "version": VERSION,
            "target": None,
            "programs": {},
            "jobs": {},
        }
        self._guard = threading.RLock()

    @classmethod
    def load(cls, path: Path) -> Lockfile:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LockfileError(f"{path.name} cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise LockfileError(f"{path.name} is not a version-{VERSION} qrt lockfile")
        data.setdefault("programs", {})
        data.setdefault("jobs", {})
        data.setdefault("target", None)
        return cls(path, data)

    # --- reading -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._guard:
            return copy.deepcopy(self._data)

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def target(self) -> dict[str, Any] | None:
        target = self._data.get("target")
        return dict(target) if target else None

    def program(self, address: str) -> dict[str, Any] | None:
        with self._guard:
            record = self._data["programs"].get(address)
            return copy.deepcopy(record) if record is not None else None

    def job(self, address: str) -> dict[str, Any] | None:
        with self._guard:
            record = self._data["jobs"].get(address)
            return copy.deepcopy(record) if record is not None else None

    def programs(self) -> dict[str, dict[str, Any]]:
        with self._guard:
            return copy.deepcopy(self._data["programs"])

    def jobs(self) -> dict[str, dict[str, Any]]:
        with self._guard:
            return copy.deepcopy(self._data["jobs"])

    def render(self) -> str:
        with self._guard:
            return json.dumps(self._data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def digest(self) -> str:
        """Identifies this exact lockfile content (a saved plan is stale once it changes)."""
        return sha256_hex(self.render())

    # --- writing -----------------------------------------------------------------------------
    def check_target(self, target: Target) -> None:
        recorded = self.target
        if recorded and (self._data["programs"] or self._data["jobs"]):
            if recorded != target.to_json():
                raise LockfileError(
                    f"{self.path.name} belongs to target {_describe(recorded)}, not "
                    f"{_describe(target.to_json())}; select the right account (--account) or "
                    "move the lockfile away to start afresh"
                )

    def set_target(self, target: Target) -> None:
        with self._guard:
            self._data["target"] = target.to_json()

    def set_program(self, address: str, record: Mapping[str, Any] | None) -> None:
        with self._guard:
            if record is None:
                self._data["programs"].pop(address, None)
            else:
                self._data["programs"][address] = dict(record)
            self.save()

    def set_job(self, address: str, record: Mapping[str, Any] | None) -> None:
        with self._guard:
            if record is None:
                self._data["jobs"].pop(address, None)
            else:
                self._data["jobs"][address] = dict(record)
            self.save()

    def update_job(self, address: str, **fields: Any) -> dict[str, Any]:
        with self._guard:
            record = dict(self._data["jobs"].get(address) or {})
            record.update(fields)
            self._data["jobs"][address] = record
            self.save()
            return copy.deepcopy(record)

    def save(self) -> None:
        with self._guard:
            text = self.render()
            if self.path.exists() and self.path.read_text("utf-8") == text:
                return
            atomic_write(self.path, text)

    def store_result(self, value: Any) -> dict[str, Any]:
        """Fields for a job record holding ``value``: inline, or referenced by digest."""
        text = canonical_json(value)
        if len(text.encode("utf-8")) <= INLINE_RESULT_LIMIT:
            return {"result": value, "result_ref": None}
        digest = sha256_hex(text)
        target = self.path.parent / RESULTS_DIR / f"{digest}.json"
        if not target.exists():
            atomic_write(target, text + "\n")
        return {"result": None, "result_ref": f"{RESULTS_DIR}/{digest}.json"}

    def load_result(self, record: Mapping[str, Any]) -> Any:
        ref = record.get("result_ref")
        if not ref:
            return record.get("result")
        try:
            return json.loads((self.path.parent / ref).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LockfileError(f"result file {ref} cannot be read: {exc}") from None


def push_history(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history list of a job record about to be replaced: the old record goes in front."""
    history = list(record.get("history") or [])
    old = {k: v for k, v in record.items() if k not in ("history", "interim_results")}
    if old.get("id"):
        history.insert(0, old)
    return history[:HISTORY_LIMIT]


def _describe(target: Mapping[str, Any]) -> str:
    text = f"{target.get('channel')} {target.get('url')}"
    if target.get("instance"):
        text += f" ({target['instance']})"
    return text


class ApplyLock:
    """An exclusive lock held for the whole of an apply; released even if the process dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "apply.lock"
        self.info_path = state_dir / "apply.lock.json"

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
            yield
        finally:
            try:
                self.info_path.unlink()
            except FileNotFoundError:
                pass
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
