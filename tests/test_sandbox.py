"""The sandbox machinery: the probe, the three program modes of the executor (sandbox, auto, unsafe),
the job clock starting with the program, and job files read without trusting the program.

The hostile probes against a real ``qrt serve`` are in ``test_isolation.py``."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_apply.engine.channel import FrameReader, encode_frame
from qrt_apply.engine.executor import LocalExecutor
from qrt_apply.engine.sandbox import Limits, Sandbox, SandboxPool, probe
from qrt_apply.engine.seccomp import filter_program
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store
from qrt_apply.errors import RuntimeApiError

from projects import BELL
from support.engine import OWNER, upload, wait_final

WHOAMI = """
import os, resource
def main(backend, user_messenger):
    return {"uid": os.getuid(), "env": sorted(os.environ), "cwd": os.getcwd(),
            "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
            "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}
"""


def run_source(service: RuntimeService, source: str, max_execution_time: int = 60) -> str:
    name = f"p-{len(service.programs(OWNER)[0])}"
    program = service.upload_program(
        OWNER, name=name, source=source, max_execution_time=max_execution_time
    ).id
    return service.run(OWNER, program, "{}").id


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without a usable bwrap (the operator's override names a missing binary)."""
    monkeypatch.setenv("QRT_BWRAP", "/nonexistent/bwrap")


def service_with(store: Store, programs: str) -> RuntimeService:
    return RuntimeService(store, LocalExecutor(store, workers=1, programs=programs))


@pytest.fixture
def sandboxed(store: Store) -> Iterator[RuntimeService]:
    reason = probe()
    if reason is not None:
        pytest.skip(f"this machine cannot make a sandbox: {reason}")
    service = service_with(store, "sandbox")
    yield service
    service.close()


def test_probe_names_what_is_missing(no_bwrap: None) -> None:
    reason = probe()
    assert reason is not None and "bwrap" in reason


def test_sandboxed_program_sees_only_what_it_needs(sandboxed: RuntimeService) -> None:
    job = run_source(sandboxed, WHOAMI, max_execution_time=30)
    assert wait_final(sandboxed, job).status == "COMPLETED", sandboxed.job_result(OWNER, job)
    seen = json.loads(sandboxed.job_result(OWNER, job))
    assert seen["uid"] != 0 and seen["uid"] != os.getuid()
    assert seen["cwd"] == "/job"
    assert set(seen["env"]) <= {
        "PATH",
        "HOME",
        "LANG",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "PWD",  # bwrap's --chdir sets it
    }
    assert 0 < seen["nproc"] <= 64
    assert 0 < seen["cpu"] <= 30 + 60  # max_execution_time + the launcher's own CPU + 1


def test_sandbox_mode_refuses_programs_without_a_sandbox(store: Store, no_bwrap: None) -> None:
    service = service_with(store, "sandbox")
    try:
        with pytest.raises(RuntimeApiError) as refused:
            run_source(service, WHOAMI)
        assert refused.value.status == 403 and "--unsafe-no-sandbox" in refused.value.message
        # built-ins are trusted code and still run
        job = service.run(OWNER, "sampler", json.dumps({"pubs": [[BELL]]}))
        assert wait_final(service, job.id).status == "COMPLETED"
    finally:
        service.close()


def test_auto_mode_falls_back_and_says_so_once(
    store: Store, no_bwrap: None, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_with(store, "auto")
    try:
        with caplog.at_level(logging.WARNING, logger="qrt_apply.engine.executor"):
            jobs = [run_source(service, WHOAMI) for _ in range(2)]
            for job in jobs:
                assert wait_final(service, job).status == "COMPLETED"
        warnings = [r for r in caplog.records if "without a sandbox" in r.getMessage()]
        assert len(warnings) == 1
        assert json.loads(service.job_result(OWNER, jobs[0]))["uid"] == os.getuid()
    finally:
        service.close()


def test_clock_starts_when_the_program_does(store: Store) -> None:
    """A cold sandbox (nothing pre-warmed) still gives a 3 s program its 3 s: the Python start-up
    and qiskit import before ``main`` are not on the job's clock."""
    service = service_with(store, "auto")
    try:
        program = upload(service, "sleeps", max_execution_time=3)
        job = service.run(OWNER, program, json.dumps({"seconds": 1}))
        assert wait_final(service, job.id).status == "COMPLETED"
        assert json.loads(service.job_result(OWNER, job.id)) == "woke up"
    finally:
        service.close()


def test_frames_from_a_job_are_read_without_trusting_them() -> None:
    read_end, write_end = os.pipe()
    try:
        reader = FrameReader(read_end, limit=1000)
        assert reader.read() == []  # nothing yet, and no blocking
        junk = b"\x00\x00\x00\x08not json"
        whole = encode_frame({"interim": "one"}) + junk + encode_frame({"result": 1})
        os.write(write_end, whole[:-3])
        assert reader.read() == [{"interim": "one"}]  # the last frame is not complete yet
        os.write(write_end, whole[-3:] + encode_frame({"interim": "x" * 2000})[:500])
        assert reader.read() == [{"result": 1}]
        with pytest.raises(ValueError, match="more than 1000 bytes"):
            os.write(write_end, b"y" * 600)
            reader.read()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_frame_reader_sees_the_end_of_the_stream() -> None:
    read_end, write_end = os.pipe()
    reader = FrameReader(read_end, limit=1000)
    os.write(write_end, encode_frame({"started": True}))
    os.close(write_end)
    assert reader.read() == [{"started": True}] and reader.closed
    os.close(read_end)


def worker_pids() -> list[int]:
    """This process's warm built-in workers."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"qrt_apply.engine.worker" in args and parent == os.getpid():
            found.append(int(proc.name))
    return found


def test_a_dead_worker_fails_its_job_and_is_replaced(store: Store) -> None:
    service = service_with(store, "auto")
    try:
        first = service.run(OWNER, "sampler", json.dumps({"pubs": [[BELL]]}))
        assert wait_final(service, first.id).status == "COMPLETED"  # the worker is warm now
        (pid,) = worker_pids()
        # a job long enough to be running when its worker is killed
        ghz = {"library": "ghz", "num_qubits": 22, "measure_all": True}
        slow = service.run(OWNER, "sampler", json.dumps({"pubs": [[ghz, None, 100_000]] * 50}))
        deadline = time.monotonic() + 60
        while service.job(OWNER, slow.id).status != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        done = wait_final(service, slow.id)
        assert done.status == "FAILED", service.job_result(OWNER, slow.id)[-500:]
        assert "worker process died" in service.job_result(OWNER, slow.id)
        after = service.run(OWNER, "sampler", json.dumps({"pubs": [[BELL]]}))
        assert wait_final(service, after.id).status == "COMPLETED"
        assert worker_pids() and pid not in worker_pids()
    finally:
        service.close()


def test_a_pooled_sandbox_outlives_the_thread_that_started_it() -> None:
    """bwrap ties a sandbox to the thread that started it: a replacement started while one
    executor thread took a sandbox must still run a job after that thread has ended."""
    pool = SandboxPool(1, python=sys.executable, limits=Limits(), isolated=probe() is None)
    taken: list[Sandbox] = []
    try:
        helper = threading.Thread(target=lambda: taken.append(pool.take()))
        helper.start()
        helper.join()  # its take() started the replacement; the thread is gone now
        spare = pool.take()
        taken.append(spare)
        source = "def main(backend, user_messenger):\n    return 7\n"
        spare.go("aer_simulator", None, 60, source, "{}")
        reader = FrameReader(spare.out, limit=1 << 20)
        frames: list[dict[str, object]] = []
        deadline = time.monotonic() + 120
        while not reader.closed and time.monotonic() < deadline:
            frames += reader.read()
            time.sleep(0.05)
        results = [f["result"] for f in frames if "result" in f]
        assert results and results[0]["status"] == "COMPLETED" and results[0]["result"] == "7"
    finally:
        for sandbox in taken:
            sandbox.destroy()
        pool.close()


def test_the_seccomp_filter_is_built_for_known_machines_only() -> None:
    for machine in ("x86_64", "aarch64"):
        program = filter_program(machine)
        assert program is not None and len(program) % 8 == 0  # whole struct sock_filter entries
        # the last three instructions are the shared returns: EPERM, ENOSYS, kill
        returns = [
            struct.unpack("=HBBI", program[i : i + 8])
            for i in range(len(program) - 24, len(program), 8)
        ]
        assert [r[3] for r in returns] == [
            0x00050000 | errno.EPERM,
            0x00050000 | errno.ENOSYS,
            0x80000000,
        ]
    assert filter_program("sparc64") is None


def test_this_machine_makes_sandboxes_where_the_kernel_allows_them() -> None:
    """The isolation tests skip where no sandbox can be made; where the kernel allows namespaces,
    failing to make one is a bug of ours (say, a Python installation the sandbox does not bind),
    and must fail here rather than skip there."""
    try:
        allowed = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        pytest.skip("this kernel does not say whether it allows user namespaces")
    if not allowed:
        pytest.skip("this kernel allows no user namespaces: qrt cannot make a sandbox here")
    assert probe() is None
