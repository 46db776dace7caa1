"""``qrt.lock``: what qrt did, per address, written deterministically and atomically.

Layout (JSON, sorted keys, two-space indent, trailing newline)::

    {"version": 1,
     "target": {"channel": ..., "url": ..., "instance": ...},
     "programs": {"program.NAME": {id, name, source, content_digest, metadata_digest, visibility, ...}},
     "jobs": {"job.BATCH/JOB": {id, digest, status, backend, session_id, created, ended,
                                submission_tag, definition, result | result_ref, drift,
                                interim_results, history}}}

One entry per address keeps merges of unrelated changes clean. A result larger than
``INLINE_RESULT_LIMIT`` bytes of canonical JSON goes to ``qrt-results/<sha256>.json`` beside the
lockfile and is referenced by digest, and so do a job definition's inputs larger than 4 KiB
(``plan/jobdiff.py``: each job keeps what it was run with, so a plan can show old → new). Writes replace the file atomically (``atomic_write``: write,
fsync, rename, fsync the directory), so the lockfile always parses, whatever moment an apply dies at.

With a journal (``Lockfile.load(path, journal=...)``, ``.qrt/lock.journal`` for the commands) a step
appends one JSON line holding the full new record of one address to the journal instead of
rewriting ``qrt.lock``, which is written every ``flush_interval`` seconds and by ``close()``. The
next load replays a journal a dead process left behind. ``ApplyLock`` keeps two applies from
interleaving.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qrt_apply.applylock import ApplyLock
from qrt_apply.errors import LockfileError
from qrt_apply.fileio import atomic_write
from qrt_apply.journal import Journal, journal_line, read_journal
from qrt_apply.locktext import EntryTexts
from qrt_apply.locktext import parse as parse_lock_text
from qrt_apply.model import canonical_json, sha256_hex
from qrt_apply.runtime.base import Target

__all__ = [
    "FLUSH_INTERVAL",
    "INLINE_RESULT_LIMIT",
    "JOURNAL_NAME",
    "RESULTS_DIR",
    "ApplyLock",
    "Lockfile",
    "atomic_write",
    "read_lock",
    "read_lock_data",
]

INLINE_RESULT_LIMIT = 64 * 1024
RESULTS_DIR = "qrt-results"
JOURNAL_NAME = "lock.journal"
FLUSH_INTERVAL = 2.0
SAVE_SHARE = 100  # periodic saves are at least this many times their own duration apart
VERSION = 1
HISTORY_LIMIT = 10


class Lockfile:
    """The lockfile's data with thread-safe updates. Without a journal every step is one atomic
    replace of qrt.lock; with one, a step is one appended line (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        data: dict[str, Any] | None = None,
        *,
        journal: Path | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        texts: EntryTexts | None = None,
    ) -> None:
        self.path = path
        self._texts = texts or EntryTexts()
        self._data: dict[str, Any] = data or {
            "version": VERSION,
            "target": None,
            "programs": {},
            "jobs": {},
        }
        self._guard = threading.RLock()
        self._journal = Journal(journal) if journal is not None else None
        self._flush_interval = flush_interval
        self._clock = clock
        self._saved_at = clock()
        self._save_cost = 0.0  # seconds the last save took (by the same clock)
        self._dirty = False  # steps journaled since qrt.lock was last written
        self._target_pending = False  # set_target not yet journaled

    @classmethod
    def load(
        cls,
        path: Path,
        journal: Path | None = None,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> Lockfile:
        """``path`` as it stands. With ``journal``, a journal left by a process that died is
        replayed first, written to ``path`` and removed; while a live apply elsewhere holds the
        state dir, its journal is only read (this Lockfile then shows that apply's progress and
        must not be written)."""
        if journal is None or not journal.exists():
            data, texts = _read_lock(path)
            return cls(
                path,
                data,
                journal=journal,
                flush_interval=flush_interval,
                clock=clock,
                texts=texts,
            )
        with ApplyLock(journal.parent).try_hold() as owned:
            # qrt.lock before the journal: a save in between then only makes the view older
            data, texts = _read_lock(path)
            lock = cls(path, data, flush_interval=flush_interval, clock=clock, texts=texts)
            entries = read_journal(journal)
            for entry in entries:
                lock._replay(entry)
            if owned:
                if entries:  # an empty journal: qrt.lock is as it was, also when there is none
                    lock.save()
                Journal(journal).remove()
                lock._journal = Journal(journal)
            return lock

    # --- reading -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A deep copy of the data, the caller's to change."""
        with self._guard:
            return copy.deepcopy(self._data)

    def view(self) -> dict[str, Any]:
        """The data as it is now, for reading only, without copying the records: they are shared
        with this Lockfile, which replaces a record on every change and never edits one, so the
        view keeps showing this moment. Callers must not modify anything in it."""
        with self._guard:
            return {
                **self._data,
                "programs": dict(self._data["programs"]),
                "jobs": dict(self._data["jobs"]),
            }

    def addresses(self) -> set[str]:
        with self._guard:
            return set(self._data["programs"]) | set(self._data["jobs"])

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
            return self._texts.render(self._data)

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
        # Written with the next step, as it always was: a command that fails before any step
        # leaves qrt.lock as it found it.
        with self._guard:
            if self._data.get("target") != target.to_json():
                self._data["target"] = target.to_json()
                self._target_pending = True

    def set_program(
        self, address: str, record: Mapping[str, Any] | None, *, durable: bool = False
    ) -> None:
        """Record (or with None, remove) a Program. ``durable``: the step must survive a machine
        crash before the caller goes on (it precedes a runtime call that cannot be taken back)."""
        self._step("programs", address, None if record is None else dict(record), durable)

    def set_job(
        self, address: str, record: Mapping[str, Any] | None, *, durable: bool = False
    ) -> None:
        """Record (or with None, remove) a job; ``durable`` as for ``set_program``."""
        self._step("jobs", address, None if record is None else dict(record), durable)

    def update_job(self, address: str, **fields: Any) -> None:
        """Set ``fields`` in a job's record (journaled as just those fields)."""
        with self._guard:
            record = dict(self._data["jobs"].get(address) or {})
            record.update(fields)
            self._step("jobs", address, record, durable=False, fields=fields)

    def _replay(self, entry: Mapping[str, Any]) -> None:
        section, address = entry["section"], entry.get("address")
        if "fields" in entry:
            record = dict(self._data[section].get(address) or {})
            record.update(entry["fields"])
            self._apply(section, address, record)
        else:
            self._apply(section, address, entry["record"])

    def _apply(self, section: str, address: str | None, record: dict[str, Any] | None) -> None:
        if section == "target":
            self._data["target"] = record
        elif record is None:
            self._data[section].pop(address, None)
        else:
            self._data[section][address] = record

    def _step(
        self,
        section: str,
        address: str | None,
        record: dict[str, Any] | None,
        durable: bool,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        with self._guard:
            self._apply(section, address, record)
            if self._journal is None:
                self.save()
                return
            # Serialised under the guard: the line is the record as it is now, and lines land in
            # the order the steps happened, which replay relies on.
            if self._target_pending:
                self._journal.append(journal_line("target", None, self._data["target"]))
                self._target_pending = False
            number = self._journal.append(journal_line(section, address, record, fields=fields))
            self._dirty = True
            self.save_if_due()
        if durable:
            self._journal.sync(number)  # outside the guard: other threads append meanwhile

    def replace_all(self, data: Mapping[str, Any]) -> None:
        """Replace the whole content and write qrt.lock in one atomic replace: an edit of many
        entries (``qrt mv`` of a batch) is then all or nothing, also across a crash."""
        with self._guard:
            self._data = copy.deepcopy(dict(data))
            self._target_pending = False
            self.save()

    def save_if_due(self) -> None:
        """Write qrt.lock if steps are journaled and ``flush_interval`` has passed since the last
        write: readers of qrt.lock (CI, a watching user) see a long apply's progress."""
        with self._guard:
            # A big lockfile takes a while to write: writes then come less often, so that they
            # stay a small share of the apply (at most 1 in SAVE_SHARE of its time).
            due = max(self._flush_interval, self._save_cost * SAVE_SHARE)
            if self._dirty and self._clock() - self._saved_at >= due:
                self.save()

    def save(self) -> None:
        """Write qrt.lock if its content changed; with a journal, empty the journal after."""
        with self._guard:
            began = self._clock()
            text = self.render()
            if self._journal is not None:
                # The journal complete on disk before qrt.lock is newer than it: a crash between
                # the two then replays whole lines onto qrt.lock, which changes nothing.
                self._journal.sync()
            if not self.path.exists() or self.path.read_text("utf-8") != text:
                atomic_write(self.path, text)
            if self._journal is not None:
                self._journal.truncate()
            self._saved_at = self._clock()
            self._save_cost = self._saved_at - began
            self._dirty = self._target_pending = False

    def close(self) -> None:
        """Write qrt.lock and remove the journal: the end of an apply, also an interrupted one."""
        with self._guard:
            if self._dirty:
                self.save()
            if self._journal is not None:
                self._journal.remove()

    def _store_blob(self, text: str) -> str:
        """Write canonical JSON ``text`` to ``qrt-results/<sha256>.json`` (once); its reference."""
        digest = sha256_hex(text)
        target = self.path.parent / RESULTS_DIR / f"{digest}.json"
        if not target.exists():
            atomic_write(target, text + "\n")
        return f"{RESULTS_DIR}/{digest}.json"

    def store_result(self, value: Any) -> dict[str, Any]:
        """Fields for a job record holding ``value``: inline, or referenced by digest."""
        text = canonical_json(value)
        if len(text.encode("utf-8")) <= INLINE_RESULT_LIMIT:
            return {"result": value, "result_ref": None}
        return {"result": None, "result_ref": self._store_blob(text)}

    def store_definition(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        """A job definition (``plan/jobdiff.py``) as the record keeps it: inputs larger than
        ``INLINE_INPUTS_LIMIT`` go to ``qrt-results/`` by digest, as large results do."""
        from qrt_apply.plan.jobdiff import INLINE_INPUTS_LIMIT

        stored = dict(definition)
        if "inputs" in stored:
            text = canonical_json(stored["inputs"])
            if len(text.encode("utf-8")) > INLINE_INPUTS_LIMIT:
                del stored["inputs"]
                stored["inputs_ref"] = self._store_blob(text)
        return stored

    def load_result(self, record: Mapping[str, Any]) -> Any:
        ref = record.get("result_ref")
        if not ref:
            return record.get("result")
        try:
            return json.loads((self.path.parent / ref).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LockfileError(f"result file {ref} cannot be read: {exc}") from None


def read_lock_data(path: Path) -> dict[str, Any] | None:
    """The data of the lockfile at ``path`` (None when there is none), checked to be one."""
    return _read_lock(path)[0]


def read_lock(path: Path) -> tuple[dict[str, Any] | None, EntryTexts]:
    """``read_lock_data`` and the text of each entry as read: a ``Lockfile`` given both renders
    again only the entries that are other objects (``qrt merge-lockfile`` keeps most)."""
    return _read_lock(path)


def _read_lock(path: Path) -> tuple[dict[str, Any] | None, EntryTexts]:
    """``read_lock_data``, and the texts of its entries as read (see ``locktext``)."""
    if not path.exists():
        return None, EntryTexts()
    try:
        text = path.read_text("utf-8")
        data, texts = parse_lock_text(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError) and "\n<<<<<<< " in f"\n{exc.doc}":
            raise LockfileError(
                f"{path.name} holds unresolved merge conflicts (<<<<<<< markers): keep one side "
                "of each, or take the file from one branch and re-apply"
            ) from None
        raise LockfileError(f"{path.name} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise LockfileError(f"{path.name} is not a version-{VERSION} qrt lockfile")
    data.setdefault("programs", {})
    data.setdefault("jobs", {})
    data.setdefault("target", None)
    return data, texts


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
