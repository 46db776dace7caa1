"""RuntimeService logic over a real store and a fake executor (no child processes here): visibility
and ownership, ids, validation, job filters and paging, cancellation, sessions, lazy recovery."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from qrt_apply.engine.records import JobQuery
from qrt_apply.engine.service import (
    BUILTIN_COST,
    MAX_ROWS,
    MAX_SECONDS,
    RESERVED_PROGRAM_IDS,
    RuntimeService,
)
from qrt_apply.engine.store import Store
from qrt_apply.errors import ConflictError, NotFoundError, RuntimeApiError

SOURCE = "def main(backend, user_messenger, **kwargs):\n    return kwargs\n"


@dataclass
class FakeExecutor:
    """Records what the service asks of an executor; ``alive`` decides runner liveness."""

    runner: str = "1@fake"
    runner_start: str | None = "100"
    alive: bool = True
    submitted: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    shutdowns: list[tuple[bool, float | None]] = field(default_factory=list)
    refusal: str | None = None  # why uploaded programs cannot run (None: they can)

    def program_refusal(self) -> str | None:
        return self.refusal

    def submit(self, job_id: str) -> None:
        self.submitted.append(job_id)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def runner_alive(self, runner: str | None, runner_start: str | None, job_id: str) -> bool:
        return self.alive and runner is not None

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self.shutdowns.append((wait, timeout))


@pytest.fixture
def executor() -> FakeExecutor:
    return FakeExecutor()


@pytest.fixture
def service(store: Store, executor: FakeExecutor) -> RuntimeService:
    return RuntimeService(store, executor)


def _upload(service: RuntimeService, owner: str, name: str = "prog", **kw: object) -> str:
    fields: dict[str, object] = {"name": name, "source": SOURCE, "max_execution_time": 300}
    fields.update(kw)
    return service.upload_program(owner, **fields).id  # type: ignore[arg-type]


def test_private_program_is_invisible_to_others(service: RuntimeService) -> None:
    pid = _upload(service, "alice", description="mine", spec={"parameters": {"type": "object"}})
    mine = service.program("alice", pid)
    assert mine.data == SOURCE and mine.description == "mine" and not mine.is_public
    for call in (
        lambda: service.program("bob", pid),
        lambda: service.update_program_data("bob", pid, SOURCE),
        lambda: service.delete_program("bob", pid),
        lambda: service.run("bob", pid, "{}"),
    ):
        with pytest.raises(NotFoundError):
            call()
    assert service.programs("bob") == ([], 0)


def test_public_program_is_visible_without_data_and_only_owner_changes_it(
    service: RuntimeService, executor: FakeExecutor
) -> None:
    pid = _upload(service, "alice", is_public=True)
    seen = service.program("bob", pid)
    assert seen.is_public and seen.data is None
    listed, count = service.programs("bob")
    assert [p.id for p in listed] == [pid] and count == 1 and listed[0].data is None
    with pytest.raises(RuntimeApiError) as refused:
        service.update_program_metadata("bob", pid, description="hijack")
    assert refused.value.status == 403
    with pytest.raises(RuntimeApiError):
        service.set_program_visibility("bob", pid, False)
    job = service.run("bob", pid, "{}")  # public programs can be run by anyone
    assert executor.submitted == [job.id]
    service.set_program_visibility("alice", pid, False)
    with pytest.raises(NotFoundError):
        service.program("bob", pid)


def test_program_ids_and_duplicate_names(service: RuntimeService) -> None:
    ids = {_upload(service, "alice", name) for name in sorted(RESERVED_PROGRAM_IDS)}
    assert not ids & RESERVED_PROGRAM_IDS
    assert all(pid.rsplit("-", 1)[1].isalnum() and len(pid.rsplit("-", 1)[1]) == 12 for pid in ids)
    assert _upload(service, "alice", "My Program!").startswith("my-program-")
    with pytest.raises(ConflictError):
        _upload(service, "alice", "sampler")
    _upload(service, "bob", "sampler")  # names are unique per owner only
    other = _upload(service, "alice", "other")
    with pytest.raises(ConflictError):
        service.update_program_metadata("alice", other, name="vqe")


def test_upload_and_update_validation(service: RuntimeService) -> None:
    with pytest.raises(RuntimeApiError) as bad:
        _upload(service, "alice", max_execution_time=0)
    assert bad.value.status == 400
    with pytest.raises(RuntimeApiError):
        _upload(service, "alice", name=" ")
    with pytest.raises(RuntimeApiError):
        _upload(service, "alice", source="")
    pid = _upload(service, "alice")
    with pytest.raises(RuntimeApiError):
        service.update_program_metadata("alice", pid, max_execution_time=-5)
    service.update_program_data("alice", pid, SOURCE + "# v2\n")
    service.update_program_metadata(
        "alice", pid, name="renamed", description="d2", max_execution_time=60, spec={"a": 1}
    )
    program = service.program("alice", pid)
    assert (program.name, program.description, program.max_execution_time) == ("renamed", "d2", 60)
    assert program.spec == {"a": 1} and program.data is not None and program.data.endswith("v2\n")
    service.delete_program("alice", pid)
    with pytest.raises(NotFoundError):
        service.program("alice", pid)


def test_programs_are_paged_in_creation_order(service: RuntimeService) -> None:
    ids = [_upload(service, "alice", f"p{i}") for i in range(5)]
    page, count = service.programs("alice", limit=2, offset=2)
    assert [p.id for p in page] == ids[2:4] and count == 5
    with pytest.raises(RuntimeApiError):
        service.programs("alice", limit=-1)


def test_builtins_are_readable_not_listed(service: RuntimeService) -> None:
    assert service.program("anyone", "sampler").is_public
    assert service.programs("anyone") == ([], 0)


def test_run_validates_and_persists(service: RuntimeService, executor: FakeExecutor) -> None:
    job = service.run(
        "alice",
        "sampler",
        '{"pubs": []}',
        backend="ibmq_qasm_simulator",
        tags=["a"],
        log_level="info",
    )
    assert re.fullmatch("[a-z0-9]{20}", job.id)
    assert (job.status, job.backend, job.tags) == ("QUEUED", "ibmq_qasm_simulator", ("a",))
    assert executor.submitted == [job.id]
    stored = service.job("alice", job.id)
    assert stored.params == {"pubs": []} and stored.created == job.created
    assert service.job("alice", job.id, include_params=False).params is None
    assert service.run("alice", "sampler", "{}").backend == "aer_simulator"
    for kwargs, params in (
        ({"backend": "no_such_backend"}, "{}"),
        ({}, "[1, 2]"),
        ({}, "not json"),
        ({"cost": 0}, "{}"),
        ({"log_level": "LOUD"}, "{}"),
        ({"tags": "abc"}, "{}"),
    ):
        with pytest.raises(RuntimeApiError) as bad:
            service.run("alice", "sampler", params, **kwargs)  # type: ignore[arg-type]
        assert bad.value.status == 400, kwargs
    with pytest.raises(NotFoundError):
        service.run("alice", "no-such-program", "{}")


def test_job_cost_is_bounded_by_the_program(service: RuntimeService, store: Store) -> None:
    pid = _upload(service, "alice", max_execution_time=30)

    def cost(program_id: str, requested: int | None) -> int:
        job = store.get_job(service.run("alice", program_id, "{}", cost=requested).id)
        assert job is not None
        return job.cost

    assert cost(pid, None) == 30
    assert cost(pid, 10) == 10
    assert cost(pid, 100) == 30
    assert cost("sampler", None) == BUILTIN_COST
    assert cost("estimator", 5) == 5


def test_jobs_of_others_are_not_found(service: RuntimeService) -> None:
    job = service.run("alice", "sampler", "{}")
    for call in (
        service.job,
        service.job_result,
        service.job_logs,
        service.job_interim_results,
        service.job_metrics,
        service.cancel_job,
        service.delete_job,
    ):
        with pytest.raises(NotFoundError):
            call("bob", job.id)
    with pytest.raises(NotFoundError):
        service.update_job_tags("bob", job.id, ["x"])
    assert service.jobs("bob") == ([], 0)


def test_job_filters_sort_and_paging(service: RuntimeService, store: Store) -> None:
    pid = _upload(service, "alice")
    a = service.run("alice", "sampler", "{}", tags=["nightly", "bell"])
    b = service.run("alice", pid, "{}", tags=["nightly"], backend="fake_noisy_5q")
    c = service.run("alice", "estimator", "{}", start_session=True)
    d = service.run("alice", "sampler", "{}", session_id=c.id)
    service.run("bob", "sampler", "{}", tags=["nightly"])
    assert store.claim_job(a.id, "1@fake", None) is not None
    store.finish_job(a.id, "1@fake", "COMPLETED")

    def ids(**filters: object) -> tuple[list[str], int]:
        jobs, count = service.jobs("alice", **filters)  # type: ignore[arg-type]
        return [j.id for j in jobs], count

    assert ids() == ([d.id, c.id, b.id, a.id], 4)
    assert ids(descending=False) == ([a.id, b.id, c.id, d.id], 4)
    assert ids(limit=2, offset=1) == ([c.id, b.id], 4)
    assert ids(pending=False) == ([a.id], 1)
    assert ids(pending=True) == ([d.id, c.id, b.id], 3)
    assert ids(tags=["nightly"]) == ([b.id, a.id], 2)
    assert ids(tags=["nightly", "bell"]) == ([a.id], 1)
    assert ids(tags=["bell", "other"]) == ([], 0)
    assert ids(program_id=pid) == ([b.id], 1)
    assert ids(backend="fake_noisy_5q") == ([b.id], 1)
    assert ids(session_id=c.id) == ([d.id, c.id], 2)
    assert c.session_id == c.id and d.session_id == c.id
    assert ids(created_after=c.created) == ([d.id, c.id], 2)
    assert ids(created_before=b.created.replace("Z", "+00:00")) == ([b.id, a.id], 2)
    with pytest.raises(RuntimeApiError):
        service.jobs("alice", created_after="yesterday")
    assert all(job.params is None for job in service.jobs("alice")[0])


def test_sessions(service: RuntimeService) -> None:
    first = service.run("alice", "sampler", "{}", start_session=True, session_time=60)
    with pytest.raises(NotFoundError):
        service.run("bob", "sampler", "{}", session_id=first.id)
    with pytest.raises(NotFoundError):
        service.close_session("bob", first.id)
    service.close_session("alice", first.id)
    with pytest.raises(ConflictError):
        service.run("alice", "sampler", "{}", session_id=first.id)
    with pytest.raises(NotFoundError):
        service.close_session("alice", "unknown")
    adopted = service.run("alice", "sampler", "{}", session_id="made-elsewhere")
    assert adopted.session_id == "made-elsewhere"
    service.close_session("alice", "made-elsewhere")


def test_cancel_delete_tags_and_results(
    service: RuntimeService, executor: FakeExecutor, store: Store
) -> None:
    job = service.run("alice", "sampler", "{}")
    assert service.job_result("alice", job.id) == ""
    service.update_job_tags("alice", job.id, ["x", "y"])
    assert service.job("alice", job.id).tags == ("x", "y")
    service.cancel_job("alice", job.id)
    assert executor.cancelled == [job.id]
    assert service.job("alice", job.id).status == "CANCELLED"
    with pytest.raises(ConflictError):
        service.cancel_job("alice", job.id)
    done = service.run("alice", "sampler", "{}")
    store.claim_job(done.id, "1@fake", None)
    store.finish_job(done.id, "1@fake", "FAILED", result="Traceback ...", metrics={"executions": 2})
    assert service.job_result("alice", done.id) == "Traceback ..."
    metrics = service.job_metrics("alice", done.id)
    assert metrics["executions"] == 2 and metrics["timestamps"]["finished"] is not None
    assert metrics["usage"]["seconds"] >= 0 and set(metrics) >= {"bss", "num_circuits"}
    running = service.run("alice", "sampler", "{}")
    service.delete_job("alice", running.id)  # an unfinished job is stopped, then deleted
    assert executor.cancelled[-1] == running.id
    with pytest.raises(NotFoundError):
        service.job("alice", running.id)


def test_recovery_requeues_only_jobs_with_dead_runners(
    service: RuntimeService, executor: FakeExecutor, store: Store
) -> None:
    job = service.run("alice", "sampler", "{}")
    store.claim_job(job.id, "999@elsewhere", None)
    executor.submitted.clear()
    assert service.recover() == [] and service.job("alice", job.id).status == "RUNNING"
    assert executor.submitted == []
    executor.alive = False
    assert service.job("alice", job.id).status == "QUEUED"  # lazily recovered by job()
    assert executor.submitted == [job.id]
    stored = store.get_job(job.id)
    assert stored is not None and stored.runner == executor.runner
    store.requeue_job(job.id, executor.runner, None, None)  # handed over by its runner
    assert service.recover() == [job.id]


def test_close_hands_over_by_default(service: RuntimeService, executor: FakeExecutor) -> None:
    service.close()
    service.close(wait=True, timeout=5)
    assert executor.shutdowns == [(False, None), (True, 5)]


def test_backends_list_aliases(service: RuntimeService) -> None:
    names = [b.name for b in service.backends()]
    assert "aer_simulator" in names and "ibmq_qasm_simulator" in names
    assert service.canonical_backend("ibmq_qasm_simulator") == "aer_simulator"


# -- range and text checks shared by qrt serve and the embedded runtime ------------------------


def _refused(words: str, call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """``call(*args, **kwargs)`` is a 400 whose message says ``words``."""
    with pytest.raises(RuntimeApiError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 400 and words in caught.value.message, caught.value.message


def test_seconds_and_paging_outside_their_range_are_refused(
    service: RuntimeService, executor: FakeExecutor, store: Store
) -> None:
    huge = 2**63
    _refused("from 1 to", _upload, service, "alice", max_execution_time=huge)
    _refused("from 1 to", _upload, service, "alice", max_execution_time=True)
    pid = _upload(service, "alice", max_execution_time=MAX_SECONDS)  # the bound itself is fine
    _refused(
        "max_execution_time must be a whole number from 1 to",
        service.update_program_metadata,
        "alice",
        pid,
        max_execution_time=MAX_SECONDS + 1,
    )
    _refused("(cost)", service.run, "alice", "sampler", "{}", cost=huge)
    _refused(
        "session max_time",
        service.run,
        "alice",
        "sampler",
        "{}",
        start_session=True,
        session_time=huge,
    )
    _refused("offset", service.programs, "alice", offset=huge)
    _refused("limit", service.jobs, "alice", limit=MAX_ROWS + 1)
    _refused("offset", service.jobs, "alice", offset=-1)
    assert executor.submitted == [] and store.list_jobs("alice", JobQuery())[1] == 0
    assert service.jobs("alice", limit=MAX_ROWS, offset=MAX_ROWS) == ([], 0)


def test_time_filters_out_of_range_are_refused(service: RuntimeService) -> None:
    job = service.run("alice", "sampler", "{}")
    late = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1)))
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    _refused("out of range", service.jobs, "alice", created_before=late)
    _refused("out of range", service.jobs, "alice", created_after=early)
    _refused("range", service.jobs, "alice", created_after="9999-12-31T23:59:59-01:00")
    _refused("before the year 1000", service.jobs, "alice", created_after="0999-01-01")
    _refused("ISO 8601", service.jobs, "alice", created_after="yesterday")
    found, _ = service.jobs("alice", created_after="1000-01-01", created_before="9999-12-31")
    assert [j.id for j in found] == [job.id]  # the edges of the range still filter


def test_text_that_cannot_be_stored_is_refused_before_the_store(
    service: RuntimeService, executor: FakeExecutor, store: Store
) -> None:
    lone = "\ud800"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "p" + lone}, "surrogate"),
        ({"name": "p\x00"}, "NUL"),
        ({"source": SOURCE + "# \x00"}, "NUL"),
        ({"description": lone}, "surrogate"),
        ({"spec": {"x": float("nan")}}, "NaN"),
        ({"spec": {lone: 1}}, "surrogate"),
    ]
    for fields, words in cases:
        _refused(words, _upload, service, "alice", **fields)
    assert service.programs("alice") == ([], 0)
    pid = _upload(service, "alice", description="\U0001f600")  # a real emoji is text
    _refused("surrogate", service.update_program_data, "alice", pid, SOURCE + lone)
    _refused("surrogate", service.update_program_metadata, "alice", pid, name=lone)
    _refused("NaN", service.update_program_metadata, "alice", pid, spec={"x": [1e999]})
    _refused("program_id", service.run, "alice", lone, "{}")
    _refused("tag", service.run, "alice", "sampler", "{}", tags=["ok", lone])
    _refused("session_id", service.run, "alice", "sampler", "{}", session_id=lone)
    _refused("job params", service.run, "alice", "sampler", '{"x": "' + lone + '"}')
    _refused("job params must be JSON", service.run, "alice", "sampler", "[" * 100_000)
    _refused("tag", service.jobs, "alice", tags=[lone])
    _refused("NUL", service.jobs, "alice", program_id="p\x00")
    assert executor.submitted == [] and store.list_jobs("alice", JobQuery())[1] == 0
    job = service.run("alice", "sampler", "{}")
    _refused("surrogate", service.update_job_tags, "alice", job.id, [lone])
    assert service.job("alice", job.id).tags == ()


def test_uploaded_programs_are_refused_where_the_executor_cannot_sandbox_them(
    service: RuntimeService, executor: FakeExecutor, store: Store
) -> None:
    program = service.upload_program("alice", name="p", source=SOURCE, max_execution_time=60).id
    executor.refusal = "no sandbox here"
    with pytest.raises(RuntimeApiError) as refused:
        service.run("alice", program, "{}")
    assert (refused.value.status, refused.value.message) == (403, "no sandbox here")
    assert executor.submitted == [] and service.jobs("alice")[1] == 0
    service.run("alice", "sampler", "{}")  # built-ins are trusted code: still accepted
    assert len(executor.submitted) == 1
