"""Refresh and waiting read listings, not objects one by one: request counts against a real
``qrt serve`` (through a counting transport), call counts against the fake runtime, and
``qrt refresh`` polling once unless ``--wait``."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from qrt_apply.cli import AppContext, cli
from qrt_apply.model import content_digest
from qrt_apply.plan import observe
from qrt_apply.plan.refresh import listing_since
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.base import JobInfo
from qrt_apply.runtime.http import LIST_PAGE, HttpRuntime

from fakes import FakeRuntime
from projects import small_project
from support.serve import ServerHandle, running_server

N_PROGRAMS = 120  # more than one page
PAGE = LIST_PAGE  # HttpRuntime's page size for /programs


class CountingTransport(httpx.BaseTransport):
    """Sends through a real transport and counts requests by method and path shape."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("serve"), users=("alice",)) as handle:
        yield handle


def source(i: int, version: int = 1) -> str:
    return (
        f"def main(backend, user_messenger, **kwargs):\n    return {{'p': {i}, 'v': {version}}}\n"
    )


@pytest.mark.slow
def test_converged_refresh_over_http_costs_the_list_pages_and_a_constant(
    server: ServerHandle,
) -> None:
    transport = CountingTransport()
    account = Account("ibm_quantum", server.token, url=server.api_url)
    with httpx.Client(transport=transport, trust_env=False, timeout=60.0) as client:
        runtime = HttpRuntime(account, client=client)
        programs: dict[str, dict[str, Any]] = {}
        for i in range(N_PROGRAMS):
            name = f"p{i}"
            program_id = runtime.upload_program(source(i), {"name": name, "max_execution_time": 60})
            programs[f"program.{name}"] = {
                "id": program_id,
                "name": name,
                "content_digest": content_digest(source(i)),
            }
        # Completed jobs are settled: the lockfile is the truth about them, nothing is read.
        jobs = {
            f"job.b/j{i}": {"id": f"gone-{i}", "status": "COMPLETED", "digest": "x"}
            for i in range(20)
        }
        lock = {"programs": programs, "jobs": jobs}
        names = [rec["name"] for rec in programs.values()]

        transport.seen.clear()
        observed = observe(runtime, lock, names=names)
        calls = Counter(transport.seen)
        pages = math.ceil(N_PROGRAMS / PAGE)
        assert calls[("GET", "/runtime/programs")] == pages
        assert not [p for m, p in transport.seen if p.startswith("/runtime/programs/")]
        assert len(transport.seen) <= pages + 10, (
            calls
        )  # the pages, the backends, nothing per object
        assert {observed.programs[r["id"]].name for r in programs.values()} == set(names)  # type: ignore[union-attr]
        assert observed.names == {r["name"]: r["id"] for r in programs.values()}

        # A source changed behind qrt's back is read -- that one only -- so diff sees the drift.
        changed = programs["program.p7"]["id"]
        runtime.update_program(changed, source(7, version=2))
        transport.seen.clear()
        observed = observe(runtime, lock, names=names)
        reads = [p for m, p in transport.seen if p.startswith("/runtime/programs/")]
        assert reads == [f"/runtime/programs/{changed}"]
        assert observed.programs[changed].data == source(7, version=2)  # type: ignore[union-attr]
        runtime.close()


def test_qrt_serve_lists_the_source_digest_to_the_owner_only(server: ServerHandle) -> None:
    with server.client() as http:
        created = http.post(
            "/programs",
            json={
                "name": "digested",
                "data": "ZGVmIG1haW4oKTogcGFzcwo=",  # "def main(): pass\n"
                "cost": 60,
            },
        )
        assert created.status_code == 201, created.text
        program_id = created.json()["id"]
        listed = {p["id"]: p for p in http.get("/programs").json()["programs"]}
        got = http.get(f"/programs/{program_id}").json()
    want = content_digest("def main(): pass\n")
    assert listed[program_id]["data_digest"] == want and got["data_digest"] == want


class CountingFake(FakeRuntime):
    """The fake runtime, counting reads: ``job()`` and ``jobs()`` and ``program()`` calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads: Counter[str] = Counter()
        self.stuck = False  # True: jobs never advance
        self.held_listings = 0  # this many pending listings advance no job

    def program(self, program_id: str) -> Any:
        self.reads["program"] += 1
        return super().program(program_id)

    def job(self, job_id: str, *, include_params: bool = True) -> JobInfo:
        self.reads["job"] += 1
        if self.stuck and job_id in self.jobs_by_id:
            return self.jobs_by_id[job_id]
        return super().job(job_id, include_params=include_params)

    def jobs(self, *, pending: bool | None = None, tags: Sequence[str] = (), **kw: Any) -> Any:
        self.reads[f"jobs(pending={pending})"] += 1
        if pending is not None and self.held_listings > 0:
            self.held_listings -= 1
            return [j for j in self.jobs_by_id.values() if j.final != pending]
        if self.stuck and pending is not None:
            return [j for j in self.jobs_by_id.values() if j.final != pending]
        before = self.reads["job"]  # the fake's listing advances jobs through job(): no read
        found = super().jobs(pending=pending, tags=tags, **kw)
        self.reads["job"] = before
        return found


def run_cli(root: Path, *args: str, runtime: Any) -> Any:
    obj = AppContext(project_dir=root, _runtime=runtime)
    return CliRunner().invoke(cli, ["-C", str(root), *args], obj=obj)


def lock_jobs(root: Path) -> dict[str, Any]:
    jobs: dict[str, Any] = json.loads((root / "qrt.lock").read_text())["jobs"]
    return jobs


def test_waiting_polls_one_listing_per_round(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = CountingFake()
    done = run_cli(root, "apply", "--auto-approve", "--no-wait", runtime=runtime)
    assert done.exit_code == 0, done.output
    in_flight = len(lock_jobs(root))
    assert in_flight > 1
    runtime.reads.clear()
    runtime.held_listings = 3
    done = run_cli(root, "refresh", "--wait", runtime=runtime)
    assert done.exit_code == 0, done.output
    assert {r["status"] for r in lock_jobs(root).values()} == {"COMPLETED"}
    # refresh lists (held: all QUEUED); wait round 0 reads each job (QUEUED -> RUNNING; a read is
    # what lets the embedded runtime recover a job whose runner died); rounds 1-2 list (held);
    # round 3 lists, the jobs end, and each is read once, as the listing no longer has it.
    # One GET per job per round would have been 5 x in_flight reads.
    assert runtime.reads["jobs(pending=True)"] == 4
    assert runtime.reads["job"] == 2 * in_flight


def test_refresh_polls_once_and_says_how_many_still_run(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = CountingFake()
    assert run_cli(root, "apply", "--auto-approve", "--no-wait", runtime=runtime).exit_code == 0
    before = lock_jobs(root)
    runtime.stuck = True
    done = run_cli(root, "refresh", runtime=runtime)
    assert done.exit_code == 0, done.output
    assert f"{len(before)} job(s) still running" in done.output
    assert {r["status"] for r in lock_jobs(root).values()} <= {"QUEUED", "RUNNING"}

    runtime.stuck = False
    done = run_cli(root, "refresh", runtime=runtime)  # the fake's jobs end within the two polls
    assert done.exit_code == 0, done.output
    assert "still running" not in done.output
    assert {r["status"] for r in lock_jobs(root).values()} == {"COMPLETED"}
    assert run_cli(root, "refresh", runtime=runtime).output.strip() == "Nothing in flight."


def test_a_listing_without_digests_falls_back_to_reading_each_program(tmp_path: Path) -> None:
    runtime = CountingFake()
    ids = [
        runtime.upload_program(source(i), {"name": f"p{i}", "max_execution_time": 60})
        for i in range(6)
    ]
    lock = {
        "programs": {
            f"program.p{i}": {
                "id": pid,
                "name": f"p{i}",
                "content_digest": content_digest(source(i)),
            }
            for i, pid in enumerate(ids)
        }
    }
    observed = observe(runtime, lock, names=[f"p{i}" for i in range(6)], parallelism=2)
    # The fake lists no data_digest: each recorded program is read once, and that read also says
    # whose it is -- no second read for the name lookup.
    assert runtime.reads["program"] == len(ids)
    assert all(observed.programs[i].data == source(n) for n, i in enumerate(ids))  # type: ignore[union-attr]
    assert observed.names == {f"p{i}": pid for i, pid in enumerate(ids)}


def test_listing_since_is_a_second_before_the_oldest_creation_time() -> None:
    assert listing_since(["2026-01-01T00:00:05.5Z", "2026-01-01T00:00:02Z"]) == (
        "2026-01-01T00:00:01.000000Z"
    )
    assert listing_since(["2026-01-01T01:00:00+01:00"]) == "2025-12-31T23:59:59.000000Z"
    # Not bounded when a time is unknown or unreadable: the listing must not leave a job out.
    assert listing_since(["2026-01-01T00:00:02Z", None]) is None
    assert listing_since(["2026-01-01T00:00:02Z", "soon"]) is None
    assert listing_since([]) is None


class BoundRecordingFake(FakeRuntime):
    """Records the ``created_after`` of each listing of pending jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.bounds: list[str | None] = []

    def jobs(self, **kw: Any) -> Any:
        if kw.get("pending") is not None:
            self.bounds.append(kw.get("created_after"))
        return super().jobs(**kw)


def test_pending_listings_ask_only_for_jobs_since_the_oldest_in_flight(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = BoundRecordingFake()
    done = run_cli(root, "apply", "--auto-approve", "--no-wait", runtime=runtime)
    assert done.exit_code == 0, done.output
    created = [r["created"] for r in lock_jobs(root).values()]
    assert len(created) > 1 and all(created)
    runtime.bounds.clear()
    done = run_cli(root, "refresh", "--wait", runtime=runtime)
    assert done.exit_code == 0, done.output
    assert {r["status"] for r in lock_jobs(root).values()} == {"COMPLETED"}
    assert runtime.bounds and set(runtime.bounds) == {listing_since(created)}
