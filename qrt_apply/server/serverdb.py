"""The HTTP server's own small state: access tokens and ``Idempotency-Key`` records.

Kept apart from the runtime store (``store.py``, shared with the embedded runtime) in its own
SQLite file in the data directory, so the server survives restarts with nothing but that directory:

* **Access tokens** are what ``POST /api/users/loginWithToken`` hands out in exchange for an API
  token. They are distinct from API tokens, expire (``ttl`` seconds), and only their SHA-256 is
  stored. Revoking a user's API tokens (``qrt users revoke``) also drops that user's access tokens.
* **Idempotency records** map (owner, ``Idempotency-Key``) to the response of the ``POST /jobs``
  that first used the key, so a retried submission answers the same job instead of making a second
  one.
* **Session modes**: the ``mode`` (``batch``/``dedicated``) and backend a v1 ``POST /sessions``
  opened a session with; the session itself (owner, open or closed) is the runtime store's.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ACCESS_TTL", "IDEMPOTENCY_TTL", "IdempotencyRecord", "ServerDB", "SessionMode"]

DEFAULT_ACCESS_TTL = 14 * 24 * 3600  # what the real API answered as ``ttl``: two weeks
IDEMPOTENCY_TTL = 24 * 3600

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS access_tokens_user ON access_tokens (user_id);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS session_modes (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    mode TEXT NOT NULL,
    backend TEXT NOT NULL
);
"""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    response: dict[str, Any]


@dataclass(frozen=True)
class SessionMode:
    mode: str
    backend: str


class ServerDB:
    """SQLite file of access tokens and idempotency records; thread-safe (a connection + a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(f"{path} was written by a newer qrt (schema {version})")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- access tokens ------------------------------------------------------------------------

    def issue_access_token(self, user_id: str, ttl: int = DEFAULT_ACCESS_TTL) -> tuple[str, float]:
        """A new access token for ``user_id`` and its creation time (epoch seconds)."""
        token = secrets.token_urlsafe(48)
        now = time.time()
        with self._lock:
            self._conn.execute("DELETE FROM access_tokens WHERE expires < ?", (now,))
            self._conn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, created, expires)"
                " VALUES (?,?,?,?)",
                (_hash(token), user_id, now, now + ttl),
            )
        return token, now

    def user_for_access_token(self, token: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT user_id, expires FROM access_tokens WHERE token_hash = ?", (_hash(token),)
            ).fetchone()
        if row is None or row[1] < time.time():
            return None
        return str(row[0])

    def revoke_access_tokens(self, user_id: str) -> int:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
        return cursor.rowcount

    # -- idempotency ---------------------------------------------------------------------------

    def idempotent_get(self, owner: str, key: str) -> IdempotencyRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT request_hash, response, created FROM idempotency"
                " WHERE owner = ? AND key = ?",
                (owner, key),
            ).fetchone()
        if row is None or row[2] < time.time() - IDEMPOTENCY_TTL:
            return None
        return IdempotencyRecord(request_hash=str(row[0]), response=json.loads(row[1]))

    def idempotent_put(
        self, owner: str, key: str, request_hash: str, response: dict[str, Any]
    ) -> None:
        now = time.time()
        with self._lock:
            self._conn.execute(
                "DELETE FROM idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL,)
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO idempotency (owner, key, request_hash, response, created)"
                " VALUES (?,?,?,?,?)",
                (owner, key, request_hash, json.dumps(response), now),
            )

    # -- session modes -------------------------------------------------------------------------

    def put_session_mode(self, session_id: str, owner: str, mode: str, backend: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO session_modes (session_id, owner, mode, backend) VALUES (?,?,?,?)",
                (session_id, owner, mode, backend),
            )

    def session_mode(self, session_id: str, owner: str) -> SessionMode | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT mode, backend FROM session_modes WHERE session_id = ? AND owner = ?",
                (session_id, owner),
            ).fetchone()
        return None if row is None else SessionMode(mode=str(row[0]), backend=str(row[1]))
