"""The SQLite store: users and hashed tokens, programs, jobs and their compare-and-set transitions,
interim results, and survival across reopening (also by a second connection, as a second process)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_apply.engine import records
from qrt_apply.engine import store as store_module
from qrt_apply.engine.records import JobQuery, JobRecord, ProgramRecord, utc_now
from qrt_apply.engine.store import SCHEMA_VERSION, Store
from qrt_apply.errors import ConflictError, NotFoundError


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runtime.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store(db_path)
    yield opened
    opened.close()


def _program(owner: str, name: str, pid: str | None = None, public: bool = False) -> ProgramRecord:
    now = utc_now()
    return ProgramRecord(
        id=pid or f"{name}-000000000000",
        owner=owner,
        name=name,
        source="def main(backend, user_messenger):\n    return 1\n",
        description="d",
        max_execution_time=60,
        spec={"parameters": {"type": "object"}},
        is_public=public,
        created=now,
        updated=now,
    )


def _job(job_id: str, owner: str = "u1", **overrides: object) -> JobRecord:
    fields: dict[str, object] = {
        "id": job_id,
        "owner": owner,
        "program_id": "sampler",
        "backend": "aer_simulator",
        "status": "QUEUED",
        "created": utc_now(),
        "cost": 60,
        "runner": "1@host",
    }
    fields.update(overrides)
    return JobRecord(**fields)  # type: ignore[arg-type]


def test_public_names_exist() -> None:
    for module in (store_module, records):
        assert all(hasattr(module, name) for name in module.__all__)


def test_tokens_are_stored_hashed_and_revocable(store: Store, db_path: Path) -> None:
    user_id, token = store.create_user("alice")
    assert store.user_for_token(token) == user_id
    assert store.user_for_token(token + "x") is None
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("runtime.db*"))
    assert token.encode() not in raw
    again, second = store.create_user("alice")  # same user, one more token
    assert again == user_id and second != token
    assert [(u.name, u.tokens) for u in store.list_users()] == [("alice", 2)]
    assert store.revoke_tokens("alice") == 2
    assert store.user_for_token(token) is None and store.user_for_token(second) is None
    with pytest.raises(NotFoundError):
        store.revoke_tokens("nobody")


def test_ensure_user_is_idempotent_and_has_no_token(store: Store) -> None:
    user_id = store.ensure_user("local")
    assert store.ensure_user("local") == user_id
    assert [(u.id, u.tokens) for u in store.list_users()] == [(user_id, 0)]


def test_programs_round_trip_and_duplicate_names(store: Store) -> None:
    first = _program("u1", "p", "p-1")
    store.insert_program(first)
    assert store.get_program("p-1") == first
    with pytest.raises(ConflictError):
        store.insert_program(_program("u1", "p", "p-2"))
    store.insert_program(_program("u2", "p", "p-3"))  # names are per owner
    store.insert_program(_program("u2", "q", "q-1", public=True))
    store.update_program("p-1", description="new", spec={"a": 1}, is_public=1)
    updated = store.get_program("p-1")
    assert updated is not None
    assert (updated.description, updated.spec, updated.is_public) == ("new", {"a": 1}, True)
    assert updated.updated >= first.updated
    with pytest.raises(ConflictError):
        store.update_program("q-1", name="p")
    with pytest.raises(ValueError):
        store.update_program("p-1", owner="u2")
    programs, count = store.list_programs("u1", None, 0)
    assert [p.id for p in programs] == ["p-1", "q-1"] and count == 2
    page, count = store.list_programs("u2", 1, 1)
    assert [p.id for p in page] == ["p-3"] and count == 3
    assert store.delete_program("p-1") and not store.delete_program("p-1")


def test_job_transitions_are_compare_and_set(store: Store) -> None:
    store.insert_job(_job("j1"), '{"a": 1}')
    claimed = store.claim_job("j1", "2@host", "77")
    assert claimed is not None and claimed.status == "RUNNING" and claimed.params == '{"a": 1}'
    assert store.claim_job("j1", "3@host", None) is None  # nobody claims it twice
    assert not store.finish_job("j1", "3@host", "COMPLETED")  # only its runner finishes it
    store.add_interim_results("j1", ["1", "2"])
    store.add_interim_results("j1", ["3"])
    assert store.interim_results("j1") == ["1", "2", "3"]
    assert store.finish_job(
        "j1", "2@host", "COMPLETED", result='"ok"', logs="log", metrics={"x": 1}
    )
    job = store.get_job("j1")
    assert job is not None and job.status == "COMPLETED" and job.ended and job.metrics == {"x": 1}
    assert store.job_text("j1", "result") == '"ok"' and store.job_text("j1", "logs") == "log"
    assert not store.cancel_job("j1")  # final


def test_requeue_forgets_the_partial_run(store: Store) -> None:
    store.insert_job(_job("j1"), "{}")
    assert store.claim_job("j1", "2@host", None) is not None
    store.add_interim_results("j1", ["partial"])
    store.set_logs("j1", "partial log")
    assert not store.requeue_job("j1", "9@host", None, None)  # wrong expected runner
    assert store.requeue_job("j1", "2@host", None, None)
    job = store.get_job("j1")
    assert job is not None and (job.status, job.runner, job.started) == ("QUEUED", None, None)
    assert store.interim_results("j1") == [] and store.job_text("j1", "logs") == ""
    assert store.requeue_job("j1", None, "5@host", "1")  # a handed-over job is taken by one
    assert not store.requeue_job("j1", None, "6@host", "1")


def test_cancel_keeps_logs_of_the_finishing_runner(store: Store) -> None:
    store.insert_job(_job("j1"), "{}")
    store.claim_job("j1", "2@host", None)
    assert store.cancel_job("j1", reason="user")
    assert not store.finish_job("j1", "2@host", "COMPLETED", result="late", logs="the logs")
    job = store.get_job("j1")
    assert job is not None and (job.status, job.reason) == ("CANCELLED", "user")
    assert store.job_text("j1", "logs") == "the logs" and store.job_text("j1", "result") == ""


def test_job_listing_filters(store: Store) -> None:
    store.insert_job(_job("a", tags=("x", "y"), created="2024-01-01T00:00:00.000000Z"), "{}")
    store.insert_job(
        _job("b", tags=("x",), backend="fake_noisy_5q", created="2024-01-02T00:00:00.000000Z"),
        "{}",
    )
    store.insert_job(_job("c", owner="u2", created="2024-01-03T00:00:00.000000Z"), "{}")
    store.claim_job("a", "1@host", None)
    store.finish_job("a", "1@host", "FAILED")

    def ids(**query: object) -> tuple[list[str], int]:
        jobs, count = store.list_jobs("u1", JobQuery(**query))  # type: ignore[arg-type]
        return [j.id for j in jobs], count

    assert ids() == (["b", "a"], 2)
    assert ids(descending=False) == (["a", "b"], 2)
    assert ids(tags=("x", "y")) == (["a"], 1)
    assert ids(tags=("x",)) == (["b", "a"], 2)
    assert ids(pending=True) == (["b"], 1) and ids(pending=False) == (["a"], 1)
    assert ids(backend="fake_noisy_5q") == (["b"], 1)
    assert ids(created_after="2024-01-01T12:00:00.000000Z") == (["b"], 1)
    assert ids(created_before="2024-01-01T12:00:00.000000Z") == (["a"], 1)
    assert ids(limit=1, offset=1) == (["a"], 2)
    assert [j.id for j in store.unfinished_jobs()] == ["b", "c"]


def test_new_session_is_recorded_with_the_job(store: Store) -> None:
    store.insert_job(_job("j1", session_id="j1"), "{}", new_session=True, session_time=300)
    session = store.session("j1")
    assert session is not None and (session.owner, session.max_time) == ("u1", 300)
    assert session.closed is None
    store.close_session("j1")
    closed = store.session("j1")
    assert closed is not None and closed.closed is not None
    assert store.session("nope") is None


def test_delete_job_removes_interim_results(store: Store) -> None:
    store.insert_job(_job("j1"), "{}")
    store.add_interim_results("j1", ["1"])
    assert store.delete_job("j1") and not store.delete_job("j1")
    assert store.get_job("j1") is None and store.interim_results("j1") == []
    store.add_interim_results("j1", ["orphan"])  # a late write for a deleted job is dropped
    assert store.interim_results("j1") == []


def test_everything_survives_reopening(db_path: Path) -> None:
    first = Store(db_path)
    user_id, token = first.create_user("alice")
    program = _program(user_id, "p", "p-1")
    first.insert_program(program)
    first.insert_job(_job("j1", owner=user_id, tags=("t",)), '{"n": 1}')
    first.add_interim_results("j1", ["i"])
    first.close()
    second = Store(db_path)
    assert second.user_for_token(token) == user_id
    assert second.get_program("p-1") == program
    job = second.get_job("j1", with_params=True)
    assert job is not None and job.params == '{"n": 1}' and job.tags == ("t",)
    assert second.interim_results("j1") == ["i"]
    second.close()
    connection = sqlite3.connect(db_path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_two_connections_share_state_and_claim_once(db_path: Path) -> None:
    one, two = Store(db_path), Store(db_path)
    one.insert_job(_job("j1"), "{}")
    assert two.claim_job("j1", "2@host", None) is not None
    assert one.claim_job("j1", "3@host", None) is None
    assert one.job_status("j1") == "RUNNING"
    one.close()
    two.close()


def test_unknown_schema_version_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    connection = sqlite3.connect(db_path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Store(db_path)


_RACER = """
import sys
from pathlib import Path
from qrt_apply.engine.records import JobRecord, utc_now
from qrt_apply.engine.store import Store

path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = Store(path)
print("ready", flush=True)
sys.stdin.readline()  # both processes start together
won = 0
for n in range(count):
    tag = f"qrt-submit:{n:064x}"
    job = JobRecord(
        id=f"{name}-{n}", owner="u1", program_id="sampler", backend="aer_simulator",
        status="QUEUED", created=utc_now(), cost=60, tags=(tag,),
    )
    won += store.insert_job(job, '{"n": %d}' % n, submit_tag=tag) is None
store.close()
print(won, flush=True)
"""


def test_a_submission_tag_makes_one_job_across_processes_sharing_the_database(
    db_path: Path,
) -> None:
    """Two processes insert jobs for the same 150 submission tags at once, each through its own
    connection: every tag ends up on exactly one job, and each process that lost a tag was
    answered with the winner's job instead of writing its own."""
    Store(db_path).close()
    count = 150
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(db_path), name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    won = [int(racer.communicate(timeout=120)[0]) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0]
    assert sum(won) == count
    check = Store(db_path)
    jobs, total = check.list_jobs("u1", JobQuery(limit=None))
    check.close()
    assert total == count
    per_tag = Counter(tag for job in jobs for tag in job.tags)
    assert len(per_tag) == count and set(per_tag.values()) == {1}


def test_insert_job_with_a_submission_tag_returns_the_job_that_has_it(store: Store) -> None:
    tag = "qrt-submit:" + "a" * 64
    assert store.insert_job(_job("j1", tags=("x", tag)), '{"n": 1}', submit_tag=tag) is None
    again = store.insert_job(_job("j2", tags=(tag,)), '{"n": 2}', submit_tag=tag)
    assert again is not None and again.id == "j1" and again.params == '{"n": 1}'
    assert store.get_job("j2") is None
    # Another owner's tag is another submission.
    assert store.insert_job(_job("j3", owner="u2", tags=(tag,)), "{}", submit_tag=tag) is None


def test_a_version_1_database_gets_its_submission_tags_indexed(db_path: Path) -> None:
    """Version 1 kept submission tags only inside ``tags``; opening it moves each job's first one
    into the indexed column, and the job is found by it."""
    tag = "qrt-submit:" + "b" * 64
    old = sqlite3.connect(db_path)
    schema = store_module._SCHEMA.replace(", submit_tag TEXT)", ")")
    schema = schema.replace("CREATE INDEX jobs_owner_submit_tag ON jobs (owner, submit_tag);", "")
    old.executescript(schema)
    old.execute(
        "INSERT INTO jobs (id, owner, program_id, backend, params, status, created, tags, cost) "
        "VALUES ('j1', 'u1', 'sampler', 'aer_simulator', '{}', 'QUEUED', ?, ?, 60)",
        (utc_now(), json.dumps(["mine", tag, "qrt-submit:other"])),
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    migrated = Store(db_path)
    found = migrated.job_with_tag("u1", tag)
    assert found is not None and found.id == "j1"
    assert migrated.job_with_tag("u1", "qrt-submit:other") is None  # the first one names it
    assert migrated.insert_job(_job("j2", tags=(tag,)), "{}", submit_tag=tag) is not None
    migrated.close()
    check = sqlite3.connect(db_path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    plan = " ".join(
        str(row)
        for row in check.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE owner = 'u1' AND submit_tag = 'x'"
        )
    )
    check.close()
    assert "jobs_owner_submit_tag" in plan


def test_new_tags_move_the_submission_tag(store: Store) -> None:
    tag = "qrt-submit:" + "c" * 64
    store.insert_job(_job("j1", tags=("x",)), "{}")
    assert store.job_with_tag("u1", tag) is None
    store.set_job_tags("j1", ["x", tag])
    found = store.job_with_tag("u1", tag)
    assert found is not None and found.id == "j1"
    store.set_job_tags("j1", ["x"])
    assert store.job_with_tag("u1", tag) is None
