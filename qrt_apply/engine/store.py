"""SQLite persistence of the local runtime: users, tokens, programs, sessions, jobs, interim results.

One connection per ``Store`` guarded by a lock (the HTTP app and the executor threads share it), WAL
mode and a busy timeout so that two processes may open the same database (``qrt plan`` while
``qrt apply`` runs). Every multi-row change is one ``BEGIN IMMEDIATE`` transaction, and job state
changes are compare-and-set (``claim_job``, ``finish_job``, ``requeue_job``), so a crash or a race
between processes leaves a consistent row. The schema is versioned with ``PRAGMA user_version``.
Only a SHA-256 hash of each token is stored. Visibility and ownership rules live in the service.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qrt_apply.engine.records import (
    JobQuery,
    JobRecord,
    ProgramRecord,
    SessionRecord,
    UserRecord,
    utc_now,
)
from qrt_apply.errors import ConflictError, NotFoundError
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX

__all__ = ["SCHEMA_VERSION", "Store"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id), created TEXT NOT NULL);
CREATE TABLE programs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL,
    description TEXT NOT NULL, max_execution_time INTEGER NOT NULL, spec TEXT NOT NULL,
    is_public INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, UNIQUE (owner, name));
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created TEXT NOT NULL, closed TEXT, max_time INTEGER);
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, program_id TEXT NOT NULL, backend TEXT NOT NULL,
    params TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, created TEXT NOT NULL, started TEXT,
    ended TEXT, session_id TEXT, tags TEXT NOT NULL, cost INTEGER NOT NULL, log_level TEXT,
    runner TEXT, runner_start TEXT, result TEXT NOT NULL DEFAULT '', logs TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}', submit_tag TEXT);
CREATE INDEX jobs_owner_created ON jobs (owner, created);
CREATE INDEX jobs_owner_submit_tag ON jobs (owner, submit_tag);
CREATE INDEX jobs_status ON jobs (status);
CREATE TABLE interim_results (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (job_id, seq));
"""

_JOB_COLUMNS = (
    "id, owner, program_id, backend, status, reason, created, started, ended, session_id, tags, "
    "cost, log_level, runner, runner_start, metrics"
)

# Version 1 -> 2: a job's submission tag (its first tag with SUBMIT_TAG_PREFIX) in an indexed
# column, so finding the job of a tag no longer reads every job of its owner.
_MIGRATE_1_TO_2 = f"""
ALTER TABLE jobs ADD COLUMN submit_tag TEXT;
UPDATE jobs SET submit_tag = (SELECT t.value FROM json_each(jobs.tags) t
    WHERE substr(t.value, 1, {len(SUBMIT_TAG_PREFIX)}) = '{SUBMIT_TAG_PREFIX}' ORDER BY t.key LIMIT 1);
CREATE INDEX jobs_owner_submit_tag ON jobs (owner, submit_tag);
"""

# The oldest job of an owner that carries a submission tag (``columns`` filled in; args: owner,
# tag).
_WITH_TAG = "SELECT {columns} FROM jobs WHERE owner = ? AND submit_tag = ? ORDER BY rowid LIMIT 1"


def _submit_tag(tags: Sequence[str]) -> str | None:
    return next((t for t in tags if t.startswith(SUBMIT_TAG_PREFIX)), None)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _program(row: sqlite3.Row) -> ProgramRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(spec=json.loads(row["spec"]), is_public=bool(row["is_public"]))
    return ProgramRecord(**values)


def _job(row: sqlite3.Row) -> JobRecord:
    values = dict(zip(row.keys(), row, strict=True))
    values.update(tags=tuple(json.loads(row["tags"])), metrics=json.loads(row["metrics"]))
    return JobRecord(**values)


def _insert(db: sqlite3.Connection, table: str, values: dict[str, Any]) -> None:
    marks = ", ".join("?" * len(values))
    db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", tuple(values.values())
    )


class Store:
    """The runtime's database at ``path`` (created with its schema when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version == 1:
                for statement in filter(str.strip, _MIGRATE_1_TO_2.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise RuntimeError(f"{path}: unsupported schema version {version}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    # -- users and tokens ------------------------------------------------------------------------

    @staticmethod
    def _ensure_user(db: sqlite3.Connection, name: str) -> str:
        row = db.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return str(row["id"])
        user_id = f"user-{secrets.token_hex(6)}"
        db.execute("INSERT INTO users VALUES (?, ?, ?)", (user_id, name, utc_now()))
        return user_id

    def ensure_user(self, name: str) -> str:
        """The id of user ``name``, created (without a token) when missing."""
        row = self._one("SELECT id FROM users WHERE name = ?", (name,))
        if row is not None:  # the common case needs no write lock
            return str(row["id"])
        with self._tx() as db:
            return self._ensure_user(db, name)

    def create_user(self, name: str) -> tuple[str, str]:
        """Create user ``name`` (or reuse an existing one) and issue a new token. The token is
        returned only here; the store keeps its SHA-256 hash."""
        token = secrets.token_urlsafe(32)
        with self._tx() as db:
            user_id = self._ensure_user(db, name)
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (_hash(token), user_id, utc_now()))
        return user_id, token

    def user_for_token(self, token: str) -> str | None:
        row = self._one("SELECT user_id FROM tokens WHERE hash = ?", (_hash(token),))
        return None if row is None else str(row["user_id"])

    def list_users(self) -> list[UserRecord]:
        rows = self._all(
            "SELECT u.id, u.name, u.created, COUNT(t.hash) AS n FROM users u "
            "LEFT JOIN tokens t ON t.user_id = u.id GROUP BY u.id ORDER BY u.rowid"
        )
        return [UserRecord(r["id"], r["name"], r["created"], r["n"]) for r in rows]

    def revoke_tokens(self, name: str) -> int:
        """Delete every token of user ``name``; returns how many there were."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no user named {name!r}")
            return db.execute("DELETE FROM tokens WHERE user_id = ?", (row["id"],)).rowcount

    # -- programs ------------------------------------------------------------------------------

    def insert_program(self, program: ProgramRecord) -> None:
        try:
            with self._tx() as db:
                values = asdict(program)
                values.update(spec=json.dumps(program.spec), is_public=int(program.is_public))
                _insert(db, "programs", values)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"a program named {program.name!r} already exists") from exc

    def get_program(self, program_id: str) -> ProgramRecord | None:
        row = self._one("SELECT * FROM programs WHERE id = ?", (program_id,))
        return None if row is None else _program(row)

    def list_programs(
        self, viewer: str, limit: int | None, offset: int
    ) -> tuple[list[ProgramRecord], int]:
        """``viewer``'s programs and every public one, in creation order, and their total count."""
        where = "FROM programs WHERE owner = ? OR is_public = 1"
        with self._lock:
            count = self._conn.execute(f"SELECT COUNT(*) {where}", (viewer,)).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT * {where} ORDER BY rowid LIMIT ? OFFSET ?",
                (viewer, -1 if limit is None else limit, offset),
            ).fetchall()
        return [_program(r) for r in rows], int(count)

    def update_program(self, program_id: str, **fields: Any) -> None:
        """Set the given columns (``name``, ``source``, ``description``, ``max_execution_time``,
        ``spec``, ``is_public``) and ``updated``."""
        allowed = {"name", "source", "description", "max_execution_time", "spec", "is_public"}
        if not fields.keys() <= allowed:
            raise ValueError(f"unknown program fields: {sorted(fields.keys() - allowed)}")
        values = {k: json.dumps(v) if k == "spec" else v for k, v in fields.items()}
        values["updated"] = utc_now()
        assignments = ", ".join(f"{k} = ?" for k in values)
        try:
            with self._tx() as db:
                db.execute(
                    f"UPDATE programs SET {assignments} WHERE id = ?",
                    (*values.values(), program_id),
                )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"a program named {fields.get('name')!r} already exists") from exc

    def delete_program(self, program_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM programs WHERE id = ?", (program_id,)).rowcount > 0

    # -- sessions ------------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionRecord | None:
        row = self._one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        if row is None:
            return None
        return SessionRecord(
            row["id"], row["owner"], row["created"], row["closed"], row["max_time"]
        )

    def open_session(self, session_id: str, owner: str, max_time: int | None) -> SessionRecord:
        """A new open session of ``owner`` (before any job names it)."""
        record = SessionRecord(session_id, owner, utc_now(), None, max_time)
        with self._tx() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, NULL, ?)",
                (session_id, owner, record.created, max_time),
            )
        return record

    def close_session(self, session_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET closed = ? WHERE id = ? AND closed IS NULL",
                (utc_now(), session_id),
            )

    # -- jobs ----------------------------------------------------------------------------------

    def insert_job(
        self,
        job: JobRecord,
        params: str,
        *,
        new_session: bool = False,
        session_time: int | None = None,
        submit_tag: str | None = None,
    ) -> JobRecord | None:
        """Persist a new job; with ``new_session`` also its session (id ``job.session_id``).
        With ``submit_tag`` (an idempotency tag among the job's tags): if ``job.owner`` already
        has a job carrying it, nothing is written and that job (with its params) is returned.
        The look-up and the insert are one ``BEGIN IMMEDIATE`` transaction, which no other
        writer of the database, in this process or another, can interleave with."""
        with self._tx() as db:
            if submit_tag is not None:
                row = db.execute(
                    _WITH_TAG.format(columns=_JOB_COLUMNS + ", params"), (job.owner, submit_tag)
                ).fetchone()
                if row is not None:
                    return _job(row)
            # A session id the runtime has not seen (made by another client) is adopted too.
            if new_session or (job.session_id and self.session(job.session_id) is None):
                db.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, NULL, ?)",
                    (job.session_id, job.owner, job.created, session_time),
                )
            values = asdict(job)
            values.update(params=params, tags=json.dumps(list(job.tags)))
            values.update(metrics=json.dumps(job.metrics or {}), submit_tag=_submit_tag(job.tags))
            _insert(db, "jobs", values)
        return None

    def get_job(self, job_id: str, *, with_params: bool = False) -> JobRecord | None:
        columns = _JOB_COLUMNS + (", params" if with_params else "")
        row = self._one(f"SELECT {columns} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    def job_status(self, job_id: str) -> str | None:
        row = self._one("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else str(row["status"])

    def job_text(self, job_id: str, column: str) -> str:
        """The ``result`` or ``logs`` text of a job ("" when the job is unknown)."""
        if column not in ("result", "logs"):
            raise ValueError(column)
        row = self._one(f"SELECT {column} FROM jobs WHERE id = ?", (job_id,))
        return "" if row is None else str(row[column])

    def list_jobs(self, owner: str, query: JobQuery) -> tuple[list[JobRecord], int]:
        where, args = ["owner = ?"], [owner]
        for column, value in (
            ("backend", query.backend),
            ("program_id", query.program_id),
            ("session_id", query.session_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.pending is not None:
            where.append(f"status {'' if query.pending else 'NOT '}IN ('QUEUED', 'RUNNING')")
        if query.created_after is not None:
            where.append("created >= ?")
            args.append(query.created_after)
        if query.created_before is not None:
            where.append("created <= ?")
            args.append(query.created_before)
        if query.tags:
            where.append(
                "NOT EXISTS (SELECT 1 FROM json_each(?) w "
                "WHERE w.value NOT IN (SELECT value FROM json_each(jobs.tags)))"
            )
            args.append(json.dumps(list(query.tags)))
        clause = " AND ".join(where)
        order = "DESC" if query.descending else "ASC"
        with self._lock:
            count = self._conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {clause}", args)
            total = int(count.fetchone()[0])
            rows = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {clause} "
                f"ORDER BY created {order}, rowid {order} LIMIT ? OFFSET ?",
                (*args, -1 if query.limit is None else query.limit, query.offset),
            ).fetchall()
        return [_job(r) for r in rows], total

    def job_with_tag(self, owner: str, tag: str, *, with_params: bool = False) -> JobRecord | None:
        """``owner``'s oldest job whose submission tag (its first tag starting with
        ``SUBMIT_TAG_PREFIX``) is ``tag``, None if none: the job an idempotency tag names, so a
        second submission with it can be answered with the first job. Indexed."""
        columns = _JOB_COLUMNS + (", params" if with_params else "")
        row = self._one(_WITH_TAG.format(columns=columns), (owner, tag))
        return None if row is None else _job(row)

    def unfinished_jobs(self) -> list[JobRecord]:
        rows = self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ('QUEUED', 'RUNNING') ORDER BY rowid"
        )
        return [_job(r) for r in rows]

    def claim_job(self, job_id: str, runner: str, runner_start: str | None) -> JobRecord | None:
        """QUEUED → RUNNING for ``runner``; None when the job is gone or no longer QUEUED."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'RUNNING', started = ?, runner = ?, runner_start = ? "
                "WHERE id = ? AND status = 'QUEUED'",
                (utc_now(), runner, runner_start, job_id),
            ).rowcount
            if not changed:
                return None
            row = db.execute(
                f"SELECT {_JOB_COLUMNS}, params FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            return _job(row)

    def requeue_job(
        self,
        job_id: str,
        expected_runner: str | None,
        runner: str | None,
        runner_start: str | None,
    ) -> bool:
        """Put an unfinished job back to QUEUED for ``runner`` (None: nobody, i.e. handed over),
        forgetting its partial run, if its runner is still ``expected_runner``."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'QUEUED', started = NULL, runner = ?, runner_start = ?, "
                "logs = '', metrics = '{}' WHERE id = ? AND status IN ('QUEUED', 'RUNNING') "
                "AND runner IS ?",
                (runner, runner_start, job_id, expected_runner),
            ).rowcount
            if changed:
                db.execute("DELETE FROM interim_results WHERE job_id = ?", (job_id,))
            return bool(changed)

    def finish_job(
        self,
        job_id: str,
        runner: str,
        status: str,
        *,
        reason: str | None = None,
        result: str = "",
        logs: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> bool:
        """RUNNING (by ``runner``) → ``status``. Logs are kept even when the job was cancelled
        meanwhile. Returns whether the status changed."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, reason = ?, result = ?, ended = ?, metrics = ? "
                "WHERE id = ? AND status = 'RUNNING' AND runner = ?",
                (status, reason, result, utc_now(), json.dumps(metrics or {}), job_id, runner),
            ).rowcount
            if logs is not None:
                db.execute("UPDATE jobs SET logs = ? WHERE id = ?", (logs, job_id))
            return bool(changed)

    def set_logs(self, job_id: str, logs: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET logs = ? WHERE id = ?", (logs, job_id))

    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """Mark an unfinished job CANCELLED; False when it is already final (or unknown)."""
        with self._tx() as db:
            return bool(
                db.execute(
                    "UPDATE jobs SET status = 'CANCELLED', reason = ?, ended = ? "
                    "WHERE id = ? AND status IN ('QUEUED', 'RUNNING')",
                    (reason, utc_now(), job_id),
                ).rowcount
            )

    def delete_job(self, job_id: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM interim_results WHERE job_id = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def set_job_tags(self, job_id: str, tags: Sequence[str]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET tags = ?, submit_tag = ? WHERE id = ?",
                (json.dumps(list(tags)), _submit_tag(tags), job_id),
            )

    def add_interim_results(self, job_id: str, texts: Sequence[str]) -> None:
        """Append interim results (oldest first) to a job that still exists."""
        if not texts:
            return
        with self._tx() as db:
            if db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                return
            last = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM interim_results WHERE job_id = ?", (job_id,)
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO interim_results VALUES (?, ?, ?)",
                [(job_id, last + i, text) for i, text in enumerate(texts, start=1)],
            )

    def interim_results(self, job_id: str) -> list[str]:
        rows = self._all(
            "SELECT text FROM interim_results WHERE job_id = ? ORDER BY seq", (job_id,)
        )
        return [str(r["text"]) for r in rows]
