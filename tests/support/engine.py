"""Helpers for tests that drive the engine directly (a ``RuntimeService`` over a ``LocalExecutor``)."""

from __future__ import annotations

import time
from pathlib import Path

from qrt_apply.engine.service import RuntimeService
from qrt_apply.runtime.base import JobInfo

PROGRAMS = Path(__file__).parents[1] / "programs"
OWNER = "user-test"


def upload(service: RuntimeService, program: str, max_execution_time: int = 30) -> str:
    """Upload ``tests/programs/<program>.py`` as OWNER's program; its id."""
    source = (PROGRAMS / f"{program}.py").read_text()
    return service.upload_program(
        OWNER, name=program, source=source, max_execution_time=max_execution_time
    ).id


def wait_final(service: RuntimeService, job_id: str, timeout: float = 120) -> JobInfo:
    """The job once final; generous by default, since a busy machine may be slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.job(OWNER, job_id)
        if job.final:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not final after {timeout} s")
