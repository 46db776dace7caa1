"""The embedded runtime end to end: the Runtime protocol over a data directory, a Bell ``sampler``
job, and the process life cycle — cheap construction, recovery of a killed runner's job, no
re-queue of a live runner's job, the ``--no-wait`` hand-over, and no child process left behind."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qrt_apply.engine.sandbox import JOB_ID_FILE
from qrt_apply.errors import ConflictError, NotFoundError
from qrt_apply.runtime.base import JobInfo, Runtime, Target
from qrt_apply.runtime.embedded import EmbeddedRuntime

from projects import BELL

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / ".qrt"


@pytest.fixture
def runtime(data_dir: Path) -> Iterator[EmbeddedRuntime]:
    with EmbeddedRuntime(data_dir) as opened:
        yield opened


def source(program: str) -> str:
    return (PROGRAMS / f"{program}.py").read_text()


def upload(runtime: Runtime, program: str, max_execution_time: int = 30) -> str:
    metadata = {"name": program, "max_execution_time": max_execution_time, "description": "t"}
    return runtime.upload_program(source(program), metadata)


def wait_final(runtime: Runtime, job_id: str, timeout: float = 30) -> JobInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = runtime.job(job_id)
        if job.final:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not final after {timeout} s")


def wait_for(predicate: Callable[[], object], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def job_processes(job_id: str) -> list[int]:
    """Pids of live sandboxes running ``job_id``: the executor's folder of a sandbox names the
    job it was given and the sandbox's pid."""
    found = []
    for note in Path(tempfile.gettempdir()).glob(f"qrt-sandbox-*/{JOB_ID_FILE}"):
        with contextlib.suppress(OSError, ValueError):
            noted_job, pid = note.read_text().split()
            if noted_job == job_id and Path(f"/proc/{pid}").exists():
                found.append(int(pid))
    return found


def python(script: str, data_dir: Path) -> subprocess.Popen[str]:
    """Another qrt process on the same data directory, driven by ``script``."""
    prelude = "import json, sys, time\nfrom pathlib import Path\n"
    prelude += "from qrt_apply.runtime.embedded import EmbeddedRuntime\n"
    prelude += f"DATA = Path({str(data_dir)!r})\nPROGRAMS = Path({str(PROGRAMS)!r})\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_construction_is_cheap(data_dir: Path) -> None:
    script = f"""
        import sys, threading
        from pathlib import Path
        from qrt_apply.runtime.embedded import EmbeddedRuntime
        runtime = EmbeddedRuntime(Path({str(data_dir)!r}))
        runtime.programs(); runtime.jobs(); runtime.program("sampler"); runtime.backends()
        assert not [m for m in sys.modules if m.split(".")[0] in ("qiskit", "qiskit_aer", "numpy")]
        assert threading.active_count() == 1, threading.enumerate()
        runtime.close()
        print("ok")
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True
    )
    assert out.stdout.strip() == "ok", out.stderr
    assert (data_dir / "runtime.db").exists()
    assert (data_dir / ".gitignore").read_text().splitlines()[-1] == "*"


def test_satisfies_the_runtime_protocol(runtime: EmbeddedRuntime) -> None:
    assert isinstance(runtime, Runtime)
    assert runtime.target == Target("embedded", ".qrt")
    assert "aer_simulator" in [b.name for b in runtime.backends()]


def test_programs_end_to_end(runtime: EmbeddedRuntime) -> None:
    pid = upload(runtime, "hello")
    assert [p.id for p in runtime.programs()] == [pid]
    assert runtime.program(pid).data == source("hello")
    with pytest.raises(ConflictError):
        upload(runtime, "hello")
    runtime.update_program(pid, source("hello") + "# v2\n", description="second", spec={"a": 1})
    program = runtime.program(pid)
    assert program.data is not None and program.data.endswith("# v2\n")
    assert (program.description, program.spec) == ("second", {"a": 1})
    runtime.set_program_visibility(pid, True)
    assert runtime.program(pid).is_public
    assert runtime.programs(limit=1, skip=1) == []
    runtime.delete_program(pid)
    with pytest.raises(NotFoundError):
        runtime.program(pid)


def test_jobs_end_to_end(runtime: EmbeddedRuntime) -> None:
    pid = upload(runtime, "hello")
    job = runtime.run(pid, {"iterations": 2}, tags=["e2e"], start_session=True, log_level="INFO")
    assert job.session_id == job.id and job.tags == ("e2e",)
    done = wait_final(runtime, job.id)
    assert done.status == "COMPLETED" and done.params == {"iterations": 2}
    assert json.loads(runtime.job_result(job.id))["inputs"] == {"iterations": 2}
    assert runtime.job_interim_results(job.id) == ['{"iteration": 0}', '{"iteration": 1}']
    assert "hello from" in runtime.job_logs(job.id)
    assert [j.id for j in runtime.jobs(tags=["e2e"], pending=False)] == [job.id]
    assert runtime.jobs(program_id="sampler") == []
    with pytest.raises(ConflictError):
        runtime.cancel_job(job.id)
    runtime.close_session(job.id)
    runtime.delete_job(job.id)
    with pytest.raises(NotFoundError):
        runtime.job(job.id)


def test_sampler_runs_a_bell_circuit_given_as_qasm(runtime: EmbeddedRuntime) -> None:
    inputs = {"pubs": [{"circuit": BELL}], "options": {"default_shots": 1000}}
    job = runtime.run("sampler", inputs)
    assert wait_final(runtime, job.id).status == "COMPLETED", runtime.job_result(job.id)
    result = json.loads(runtime.job_result(job.id))
    counts = result["results"][0]["data"]["c"]["counts"]
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1000
    assert min(counts.values()) > 350  # both outcomes, about half each


def test_job_of_a_killed_runner_is_recovered(data_dir: Path) -> None:
    other = python(
        """
        runtime = EmbeddedRuntime(DATA)
        pid = runtime.upload_program((PROGRAMS / "sleeps.py").read_text(),
                                     {"name": "s", "max_execution_time": 30})
        job = runtime.run(pid, {"seconds": 1})
        while not runtime.job_interim_results(job.id):
            time.sleep(0.02)
        print(job.id, flush=True)
        time.sleep(60)
        """,
        data_dir,
    )
    with other:
        assert other.stdout is not None
        job_id = other.stdout.readline().strip()
        assert job_processes(job_id)
        other.send_signal(signal.SIGKILL)  # no close(), no atexit: a crash
    wait_for(lambda: not job_processes(job_id), timeout=5)  # the orphan stops by itself
    with EmbeddedRuntime(data_dir) as runtime:
        assert runtime.job(job_id).status in ("QUEUED", "RUNNING")  # recovered by looking
        done = wait_final(runtime, job_id)
        assert done.status == "COMPLETED"
        assert runtime.job_interim_results(job_id) == ['{"sleeping": 1}']  # one run's worth


def test_job_of_a_live_runner_is_left_alone(data_dir: Path) -> None:
    other = python(
        """
        with EmbeddedRuntime(DATA) as runtime:
            pid = runtime.upload_program((PROGRAMS / "sleeps.py").read_text(),
                                         {"name": "s", "max_execution_time": 30})
            job = runtime.run(pid, {"seconds": 1.5})
            print(job.id, flush=True)
        """,
        data_dir,
    )
    with other, EmbeddedRuntime(data_dir) as runtime:
        assert other.stdout is not None
        job_id = other.stdout.readline().strip()
        assert not runtime.job(job_id).final
        record = runtime.service.store.get_job(job_id)
        assert record is not None and record.runner == f"{other.pid}@{socket.gethostname()}"
        assert other.wait(timeout=30) == 0  # its close() waited for the job
        assert runtime.job(job_id).status == "COMPLETED"
        assert runtime.job_result(job_id) == '"woke up"'


def test_no_wait_hands_over_and_a_later_process_completes(data_dir: Path) -> None:
    other = python(
        """
        runtime = EmbeddedRuntime(DATA, close_timeout=0)
        pid = runtime.upload_program((PROGRAMS / "hello.py").read_text(),
                                     {"name": "h", "max_execution_time": 30})
        print(runtime.run(pid, {"iterations": 1}).id, flush=True)
        runtime.close()
        """,
        data_dir,
    )
    with other:
        assert other.stdout is not None
        job_id = other.stdout.readline().strip()
        assert other.wait(timeout=30) == 0
    assert not job_processes(job_id)
    with EmbeddedRuntime(data_dir) as runtime:
        assert wait_final(runtime, job_id).status == "COMPLETED"
        assert runtime.job_interim_results(job_id) == ['{"iteration": 0}']


def test_close_leaves_no_child_process(data_dir: Path) -> None:
    runtime = EmbeddedRuntime(data_dir, close_timeout=0.2)
    job = runtime.run(upload(runtime, "sleeps"), {})
    wait_for(lambda: runtime.job_interim_results(job.id))
    assert job_processes(job.id)
    started = time.monotonic()
    runtime.close()
    assert time.monotonic() - started < 3
    assert not job_processes(job.id)
    with EmbeddedRuntime(data_dir) as again:
        record = again.service.store.get_job(job.id)
        assert record is not None and (record.status, record.runner) == ("QUEUED", None)
        again.cancel_job(job.id)
        assert again.job(job.id).status == "CANCELLED"


def test_read_only_runtime_reports_a_dead_runners_job_without_running_it(tmp_path: Path) -> None:
    from qrt_apply.runtime.embedded import EmbeddedRuntime

    writer = EmbeddedRuntime(tmp_path / "rt", close_timeout=0)
    program = writer.upload_program(
        "import time\ndef main(backend, user_messenger):\n    time.sleep(30)\n",
        {"name": "napper", "max_execution_time": 60, "description": "sleeps"},
    )
    job = writer.run(program, {})
    writer.close()  # hands the job over: back to QUEUED, no runner
    reader = EmbeddedRuntime(tmp_path / "rt", read_only=True)
    try:
        assert reader.job(job.id).status == "QUEUED"
        time.sleep(1.0)  # an executor would have claimed it well within this
        assert reader.job(job.id).status == "QUEUED"
    finally:
        reader.close()
    runner = EmbeddedRuntime(tmp_path / "rt", close_timeout=0)
    try:
        assert runner.job(job.id).status in ("QUEUED", "RUNNING")
        runner.cancel_job(job.id)
    finally:
        runner.close()
