"""Jobs of the embedded runtime handed over when ``qrt`` exits early, with real CLI processes.

``qrt apply --no-wait`` hands its jobs to a detached runner (``engine/runner.py``) that runs them
and exits; ``qrt refresh`` collects the results. Ctrl-C during ``qrt apply`` stops at once, exits
130 (also on a second Ctrl-C), hands the jobs back to the queue and starts nothing in the
background; the next ``qrt apply`` runs them without submitting them again.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qrt_apply.engine import runner
from qrt_apply.engine.records import JobRecord
from qrt_apply.engine.store import Store
from qrt_apply.runtime.embedded import EmbeddedRuntime

from projects import qrt, write

# Sleeps ``seconds``, or until the wall-clock time ``until``: a run after a hand-over only sleeps
# what is left, and the test shares no state with the (perhaps sandboxed) program.
SLEEPER = """\
import time

def main(backend, user_messenger, n, seconds=0.0, until=0.0):
    user_messenger.publish({"started": n})
    time.sleep(max(seconds, until - time.time()))
    return {"n": n}
"""


def sleeper_project(root: Path, jobs: list[dict[str, Any]]) -> Path:
    """Program ``sleeper`` and batch ``work`` with one job per inputs mapping (``j0``, ``j1``...)."""
    write(root, "programs/sleeper.py", SLEEPER)
    lines = [
        "apiVersion: qrt/v1\nkind: Program\nname: sleeper\nsource: ../programs/sleeper.py\n"
        "description: Sleeps, then returns n.\nmax_execution_time: 120\n"
        "---\napiVersion: qrt/v1\nkind: JobBatch\nname: work\nprogram: sleeper\njobs:\n"
    ]
    lines += [
        f"  - {{name: j{i}, inputs: {json.dumps(inputs)}}}\n" for i, inputs in enumerate(jobs)
    ]
    write(root, "manifests/work.yaml", "".join(lines))
    return root


def lock_jobs(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "qrt.lock"
    return json.loads(path.read_text())["jobs"] if path.exists() else {}


@contextmanager
def opened_store(data_dir: Path) -> Iterator[Store]:
    store = Store(data_dir / "runtime.db")
    try:
        yield store
    finally:
        store.close()


def stored_jobs(root: Path) -> dict[str, JobRecord]:
    """The runtime's rows of the jobs qrt.lock knows by id, by address."""
    ids = {address: r["id"] for address, r in lock_jobs(root).items() if r.get("id")}
    if not ids:
        return {}
    with opened_store(root / ".qrt") as store:
        records = {address: store.get_job(job_id) for address, job_id in ids.items()}
    return {address: record for address, record in records.items() if record is not None}


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout} s"
        time.sleep(0.1)


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")  # a zombie has exited; only its parent has yet to reap it


def env_for(root: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(root / "home")}
    for key in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE"):
        env.pop(key, None)
    return env


# -- apply --no-wait: the detached runner ---------------------------------------------------------


@pytest.mark.slow
def test_no_wait_hands_jobs_to_a_detached_runner_that_runs_them_and_exits(tmp_path: Path) -> None:
    root = sleeper_project(tmp_path, [{"n": 0, "seconds": 1}, {"n": 1}, {"n": 2, "seconds": 2}])
    data_dir = root / ".qrt"
    done = qrt(root, "apply", "--auto-approve", "--no-wait", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 job(s) still running; `qrt refresh` collects them." in done.stdout
    ids = {address: record["id"] for address, record in lock_jobs(root).items()}
    assert len(ids) == 3

    # Nobody but the detached runner is left to run them: wait for the store, not for a refresh.
    def all_final() -> bool:
        jobs = stored_jobs(root)
        return len(jobs) == 3 and all(j.status in ("COMPLETED", "FAILED") for j in jobs.values())

    wait_until(all_final, 120, "the detached runner finishing the jobs")
    jobs = stored_jobs(root)
    assert {j.status for j in jobs.values()} == {"COMPLETED"}, [j.reason for j in jobs.values()]
    runners = {j.runner for j in jobs.values()}
    recorded = int((data_dir / runner.LOCK_FILE).read_text())
    assert runners == {f"{recorded}@{socket.gethostname()}"}  # one process ran them all: the runner

    # ... which then exits, letting go of its lock: no process is left behind.
    wait_until(lambda: runner.runner_pid(data_dir) is None, 60, "the runner's lock released")
    wait_until(lambda: process_gone(recorded), 60, "the runner process gone")
    assert "ran 3 job(s)" in (data_dir / runner.LOG_FILE).read_text()

    # refresh only collects; a bounded number of attempts (each one waits for what is in flight)
    for _ in range(5):
        collected = qrt(root, "refresh", timeout=120)
        assert collected.returncode == 0, collected.stdout + collected.stderr
        if {r["status"] for r in lock_jobs(root).values()} == {"COMPLETED"}:
            break
    final = lock_jobs(root)
    assert {address: r["id"] for address, r in final.items()} == ids
    assert [final[f"job.work/j{i}"]["result"] for i in range(3)] == [{"n": i} for i in range(3)]
    assert [final[f"job.work/j{i}"]["interim_results"] for i in range(3)] == [
        [{"started": i}] for i in range(3)
    ]
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 0
    assert runner.runner_pid(data_dir) is None  # refresh started no runner of its own


def handed_over_job(data_dir: Path) -> str:
    """A job of a quick program, handed over at once: QUEUED with no runner."""
    writer = EmbeddedRuntime(data_dir, close_timeout=0)
    program = writer.upload_program(SLEEPER, {"name": "s", "max_execution_time": 60})
    job = writer.run(program, {"n": 7}).id
    writer.close()
    return job


def run_runner(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qrt_apply.engine.runner", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_a_second_runner_leaves_at_once_while_one_holds_the_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / ".qrt"
    job = handed_over_job(data_dir)
    with (data_dir / runner.LOCK_FILE).open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a runner at work would
        held.write(f"{os.getpid()}\n")
        held.flush()
        assert runner.runner_pid(data_dir) == os.getpid()
        second = run_runner(data_dir)
        assert second.returncode == 0, second.stderr
        with opened_store(data_dir) as store:
            record = store.get_job(job)
            assert record is not None and (record.status, record.runner) == ("QUEUED", None)
    assert runner.runner_pid(data_dir) is None
    alone = run_runner(data_dir)
    assert alone.returncode == 0, alone.stderr
    assert "ran 1 job(s)" in alone.stdout
    with opened_store(data_dir) as store:
        record = store.get_job(job)
        assert record is not None and record.status == "COMPLETED", store.job_text(job, "result")
    assert runner.runner_pid(data_dir) is None
    assert "ran 0 job(s)" in run_runner(data_dir).stdout  # nothing left: it exits at once


# -- Ctrl-C during apply ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_hands_jobs_back_at_once_and_exits_130(tmp_path: Path, presses: int) -> None:
    # The jobs sleep until a common wall-clock time: long enough to be interrupted while they run
    # (the test waits at most 30 s for that), short for the run that resumes them.
    until = time.time() + 40
    root = sleeper_project(tmp_path, [{"n": i, "until": until} for i in range(3)])
    data_dir = root / ".qrt"
    process = subprocess.Popen(
        [sys.executable, "-m", "qrt_apply", "-C", str(root), "apply", "--auto-approve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(root),
    )
    try:
        # Interrupt once every job is submitted and one is running (the third waits for a worker).
        def running() -> bool:
            assert process.poll() is None, process.communicate()
            jobs = stored_jobs(root)
            return len(jobs) == 3 and any(j.status == "RUNNING" for j in jobs.values())

        wait_until(running, 30, "jobs submitted and running")
        process.send_signal(signal.SIGINT)
        if presses == 2:
            # Wherever this one lands (hand-over, message, exit), the outcome must be the same.
            time.sleep(0.2)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "stopped and queued again" in err

    # Handed back, nothing half done: every job QUEUED with no runner, and no background runner.
    submitted = {address: r["id"] for address, r in lock_jobs(root).items()}
    jobs = stored_jobs(root)
    assert len(jobs) == 3 and {(j.status, j.runner) for j in jobs.values()} == {("QUEUED", None)}
    assert runner.runner_pid(data_dir) is None and not (data_dir / runner.LOG_FILE).exists()
    plan = qrt(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "job.work/j0  wait:" in plan.stdout
    if presses == 2:
        return  # resuming is the same as after one press; once is enough for the test's time

    resumed = qrt(root, "apply", "--auto-approve", timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "submitted" not in resumed.stdout  # collected, never submitted twice
    final = lock_jobs(root)
    assert {address: r["id"] for address, r in final.items()} == submitted
    assert {r["status"] for r in final.values()} == {"COMPLETED"}
    assert [final[f"job.work/j{i}"]["interim_results"] for i in range(3)] == [
        [{"started": i}] for i in range(3)
    ]
