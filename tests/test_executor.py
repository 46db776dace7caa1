"""LocalExecutor with real child processes: results, interim results and logs, failures with their
traceback, the max_execution_time kill, cancellation (here and through the database), hand-over
at shutdown and recovery by another executor, and no process left behind."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_apply.engine.executor import LocalExecutor, runner_alive, this_runner
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store

from support.engine import OWNER, PROGRAMS, upload, wait_final


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def service(store: Store) -> Iterator[RuntimeService]:
    runtime = RuntimeService(store, LocalExecutor(store, workers=2))
    yield runtime
    runtime.close()


def wait_for(predicate: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_program_completes_with_interim_results_and_logs(service: RuntimeService) -> None:
    pid = upload(service, "hello")
    job = service.run(OWNER, pid, json.dumps({"iterations": 3}), backend="ibmq_qasm_simulator")
    done = wait_final(service, job.id)
    assert done.status == "COMPLETED" and done.started and done.ended
    assert json.loads(service.job_result(OWNER, job.id)) == {
        "inputs": {"iterations": 3},
        "backend": "aer_simulator",
    }
    interim = service.job_interim_results(OWNER, job.id)
    assert [json.loads(text) for text in interim] == [{"iteration": i} for i in range(3)]
    assert "hello from aer_simulator" in service.job_logs(OWNER, job.id)
    assert service.job_metrics(OWNER, job.id)["qiskit_version"]


def test_old_style_final_publish_is_the_result(service: RuntimeService) -> None:
    job = service.run(OWNER, upload(service, "old_final"), "{}")
    assert wait_final(service, job.id).status == "COMPLETED"
    assert json.loads(service.job_result(OWNER, job.id)) == {"answer": 42}
    assert service.job_interim_results(OWNER, job.id) == ['{"step": 1}']


def test_exception_fails_the_job_with_its_traceback(service: RuntimeService) -> None:
    job = service.run(OWNER, upload(service, "fails"), json.dumps({"value": 7}))
    assert wait_final(service, job.id).status == "FAILED"
    result = service.job_result(OWNER, job.id)
    assert result.startswith("Traceback (most recent call last):")
    assert "in helper" in result and result.rstrip().endswith("ValueError: bad value 7")
    assert service.job_interim_results(OWNER, job.id) == ['"about to fail"']
    assert "ValueError: bad value 7" in service.job_logs(OWNER, job.id)


def test_bad_inputs_fail_the_job(service: RuntimeService) -> None:
    job = service.run(OWNER, upload(service, "hello"), json.dumps({"unexpected": 1, "x": 2}))
    assert wait_final(service, job.id).status == "COMPLETED"  # **kwargs takes anything
    job = service.run(OWNER, upload(service, "sleeps"), json.dumps({"seconds": "soon"}))
    assert wait_final(service, job.id).status == "FAILED"
    assert "TypeError" in service.job_result(OWNER, job.id)


def test_running_too_long_is_cancelled(service: RuntimeService) -> None:
    job = service.run(OWNER, upload(service, "sleeps", max_execution_time=2), "{}")
    started = time.monotonic()
    done = wait_final(service, job.id)
    assert (done.status, done.reason) == ("CANCELLED", "RAN TOO LONG")
    assert time.monotonic() - started > 1.9  # never before its time (no upper bound: busy CI)
    assert "going to sleep" in service.job_logs(OWNER, job.id)
    assert service.job_interim_results(OWNER, job.id) == ['{"sleeping": 60}']


def processes_with(token: str) -> list[int]:
    """Pids of the live processes whose command line holds ``token``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if token.encode() in args and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_cancel_running_job_kills_everything_it_started(service: RuntimeService) -> None:
    token = f"qrt-test-{os.getpid()}-{time.monotonic_ns()}"
    job = service.run(OWNER, upload(service, "spawns"), json.dumps({"token": token}))
    wait_for(lambda: service.job_interim_results(OWNER, job.id), timeout=60)
    assert processes_with(token)
    assert service.job(OWNER, job.id).status == "RUNNING"
    service.cancel_job(OWNER, job.id)
    assert wait_final(service, job.id, timeout=30).status == "CANCELLED"
    wait_for(lambda: not processes_with(token), timeout=30)


def test_cancel_from_another_process_reaches_the_runner(
    service: RuntimeService, tmp_path: Path
) -> None:
    job = service.run(OWNER, upload(service, "sleeps"), "{}")
    wait_for(lambda: service.job_interim_results(OWNER, job.id))
    other = Store(tmp_path / "runtime.db")  # what another process would do: only the database
    assert other.cancel_job(job.id)
    other.close()
    # the program sleeps 60 s: CANCELLED, not COMPLETED, shows the runner saw the database
    service.executor.shutdown(wait=True, timeout=50)
    assert service.job(OWNER, job.id).status == "CANCELLED"
    assert "going to sleep" in service.job_logs(OWNER, job.id)


def test_deleted_program_fails_a_queued_job(store: Store) -> None:
    executor = LocalExecutor(store, workers=1)
    service = RuntimeService(store, executor)
    source = (PROGRAMS / "sleeps.py").read_text()
    blocker = service.upload_program(OWNER, name="b", source=source, max_execution_time=30).id
    first = service.run(OWNER, blocker, json.dumps({"seconds": 0.5}))
    pid = upload(service, "hello")
    job = service.run(OWNER, pid, "{}")  # waits behind the first: one worker
    service.delete_program(OWNER, pid)
    assert wait_final(service, first.id).status == "COMPLETED"
    assert wait_final(service, job.id).status == "FAILED"
    assert "deleted" in service.job_result(OWNER, job.id)
    service.close()


def test_shutdown_hands_over_and_another_executor_recovers(store: Store) -> None:
    first = RuntimeService(store, LocalExecutor(store, workers=1))
    pid = upload(first, "sleeps")
    running = first.run(OWNER, pid, json.dumps({"seconds": 1}))
    queued = first.run(OWNER, pid, json.dumps({"seconds": 0}))
    wait_for(lambda: first.job_interim_results(OWNER, running.id))
    first.close()  # hand over at once: the running job is killed, both go back to QUEUED
    for job_id in (running.id, queued.id):
        record = store.get_job(job_id)
        assert record is not None and (record.status, record.runner) == ("QUEUED", None)
        assert store.interim_results(job_id) == []
    second = RuntimeService(store, LocalExecutor(store, workers=2))
    assert sorted(second.recover()) == sorted([running.id, queued.id])
    assert second.recover() == []  # already taken
    for job_id in (running.id, queued.id):
        assert wait_final(second, job_id).status == "COMPLETED"
    assert second.job_interim_results(OWNER, running.id) == ['{"sleeping": 1}']
    second.close()


def test_shutdown_with_wait_lets_jobs_finish(store: Store) -> None:
    service = RuntimeService(store, LocalExecutor(store, workers=1))
    job = service.run(OWNER, upload(service, "hello"), "{}")
    service.close(wait=True, timeout=30)
    assert service.job(OWNER, job.id).status == "COMPLETED"


def test_runner_identity() -> None:
    runner, start = this_runner()
    assert runner == f"{os.getpid()}@{runner.split('@', 1)[1]}"
    assert not runner_alive(runner, start, "not-held-here")  # this process holds no such job
    assert not runner_alive(None, None, "x")
    assert runner_alive(f"1@{'other-host'}", None, "x")  # cannot tell: assume alive
    parent = f"{os.getppid()}@{runner.split('@', 1)[1]}"
    assert runner_alive(parent, None, "x")
    assert not runner_alive(parent, "0", "x")  # same pid, another process start: pid reused
    assert not runner_alive(f"{2**22 + 7}@{runner.split('@', 1)[1]}", None, "x")


def test_logs_are_bounded_keeping_head_and_tail(store: Store) -> None:
    service = RuntimeService(store, LocalExecutor(store, workers=1, log_limit=4096))
    job = service.run(OWNER, upload(service, "chatty"), json.dumps({"lines": 20000}))
    assert wait_final(service, job.id).status == "COMPLETED"
    logs = service.job_logs(OWNER, job.id)
    assert len(logs) < 4200
    assert logs.startswith("line 000000\n") and logs.endswith("the end\n")
    assert "bytes of output skipped" in logs
    service.close()


def test_executor_failure_fails_the_job_and_keeps_the_worker(store: Store) -> None:
    executor = LocalExecutor(store, workers=1, python="/nonexistent/python")
    service = RuntimeService(store, executor)
    pid = upload(service, "hello")
    first, second = service.run(OWNER, pid, "{}"), service.run(OWNER, pid, "{}")
    for job in (first, second):  # the second shows the worker survived the first
        assert wait_final(service, job.id).status == "FAILED"
        assert "/nonexistent/python" in service.job_result(OWNER, job.id)
    service.close()
