"""An in-memory Runtime for unit tests of planning and applying logic.

Jobs advance one state per ``job()`` poll (QUEUED → RUNNING → final), like the fake client of
qiskit-ibm-runtime; ``outcomes`` decides how a program's jobs end. ``calls`` records every
mutating call, so tests can assert what was (and was not) sent.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from qrt_apply.errors import ConflictError, NotFoundError
from qrt_apply.runtime.base import BackendInfo, JobInfo, ProgramInfo, Target


class FakeRuntime:
    def __init__(self, *, outcomes: Mapping[str, str] | None = None) -> None:
        self.programs_by_id: dict[str, ProgramInfo] = {}
        self.jobs_by_id: dict[str, JobInfo] = {}
        self.results: dict[str, str] = {}
        self.interim: dict[str, list[str]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.outcomes = dict(outcomes or {})
        self.fail_next_run_after_submit = False
        self._ids = itertools.count(1)
        self.closed_sessions: list[str] = []

    @property
    def target(self) -> Target:
        return Target("fake", "memory")

    def backends(self, names: Collection[str] | None = None) -> list[BackendInfo]:
        return [BackendInfo("aer_simulator", 32), BackendInfo("fake_noisy_5q", 5, noisy=True)]

    def programs(self, *, limit: int | None = None, skip: int = 0) -> list[ProgramInfo]:
        items = [replace(p, data=None) for p in self.programs_by_id.values()]
        return items[skip : None if limit is None else skip + limit]

    def program(self, program_id: str) -> ProgramInfo:
        if program_id not in self.programs_by_id:
            raise NotFoundError(f"program {program_id} not found", 404)
        return self.programs_by_id[program_id]

    def upload_program(self, data: str, metadata: Mapping[str, Any]) -> str:
        # Names are unique per owner; another user's program (no readable data) does not count.
        owned = (p for p in self.programs_by_id.values() if p.data is not None)
        if any(p.name == metadata["name"] for p in owned):
            raise ConflictError("duplicate", 409)
        program_id = f"{metadata['name']}-{next(self._ids):012x}"
        self.programs_by_id[program_id] = ProgramInfo(
            id=program_id,
            name=metadata["name"],
            description=metadata.get("description", ""),
            max_execution_time=metadata["max_execution_time"],
            spec=dict(metadata.get("spec") or {}),
            is_public=bool(metadata.get("is_public", False)),
            data=data,
        )
        self.calls.append(("upload_program", metadata["name"]))
        return program_id

    def update_program(
        self,
        program_id: str,
        data: str | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        info = self.program(program_id)
        changes: dict[str, Any] = {}
        if data is not None:
            changes["data"] = data
        if name is not None:
            changes["name"] = name
        if description is not None:
            changes["description"] = description
        if max_execution_time is not None:
            changes["max_execution_time"] = max_execution_time
        if spec is not None:
            changes["spec"] = dict(spec)
        self.programs_by_id[program_id] = replace(info, **changes)
        self.calls.append(("update_program", (program_id, tuple(sorted(changes)))))

    def set_program_visibility(self, program_id: str, public: bool) -> None:
        self.programs_by_id[program_id] = replace(self.program(program_id), is_public=public)
        self.calls.append(("set_program_visibility", (program_id, public)))

    def delete_program(self, program_id: str) -> None:
        self.program(program_id)
        del self.programs_by_id[program_id]
        self.calls.append(("delete_program", program_id))

    def run(
        self,
        program_id: str,
        inputs: Mapping[str, Any],
        *,
        backend: str | None = None,
        max_execution_time: int | None = None,
        log_level: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        start_session: bool = False,
    ) -> JobInfo:
        if program_id not in ("sampler", "estimator"):
            self.program(program_id)
        job_id = f"job{next(self._ids):06d}"
        info = JobInfo(
            id=job_id,
            program_id=program_id,
            status="QUEUED",
            backend=backend or "aer_simulator",
            created="2026-01-01T00:00:00Z",
            session_id=job_id if start_session else session_id,
            tags=tuple(tags),
            params=dict(inputs),
        )
        self.jobs_by_id[job_id] = info
        self.calls.append(("run", (program_id, json.dumps(dict(inputs), sort_keys=True))))
        if self.fail_next_run_after_submit:
            self.fail_next_run_after_submit = False
            raise KeyboardInterrupt  # the process "dies" after the runtime accepted the job
        return info

    def job(self, job_id: str, *, include_params: bool = True) -> JobInfo:
        if job_id not in self.jobs_by_id:
            raise NotFoundError(f"job {job_id} not found", 404)
        info = self.jobs_by_id[job_id]
        if info.status == "QUEUED":
            info = replace(info, status="RUNNING", started="2026-01-01T00:00:01Z")
        elif info.status == "RUNNING":
            outcome = self.outcomes.get(info.program_id, "COMPLETED")
            info = replace(info, status=outcome, ended="2026-01-01T00:00:02Z")
            if outcome == "COMPLETED":
                params = dict(info.params or {})
                self.results[job_id] = json.dumps({"echo": params})
                self.interim[job_id] = [json.dumps({"step": 1})]
            elif outcome == "FAILED":
                self.results[job_id] = "Traceback (most recent call last):\nValueError: boom"
        self.jobs_by_id[job_id] = info
        return info

    def jobs(
        self,
        *,
        limit: int | None = 10,
        skip: int = 0,
        backend: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        tags: Sequence[str] = (),
        session_id: str | None = None,
        descending: bool = True,
        created_after: str | None = None,
    ) -> list[JobInfo]:
        # list(): one step under the GIL, while apply's threads add jobs (run) meanwhile
        found = [j for j in list(self.jobs_by_id.values()) if set(tags) <= set(j.tags)]
        if created_after is not None:
            since = datetime.fromisoformat(created_after)
            found = [j for j in found if j.created and datetime.fromisoformat(j.created) >= since]
        if pending is not None:
            # A listing of pending jobs is a poll too: each unfinished job advances one state, as
            # by job(), so code that waits with listings sees jobs end.
            for job_id in [j.id for j in found if not j.final]:
                self.job(job_id)
            found = [self.jobs_by_id[j.id] for j in found]
            found = [j for j in found if j.final != pending]
        return found[skip : None if limit is None else skip + limit]

    def job_result(self, job_id: str) -> str:
        return self.results.get(job_id, "")

    def job_interim_results(self, job_id: str) -> list[str]:
        return list(self.interim.get(job_id, []))

    def job_logs(self, job_id: str) -> str:
        return ""

    def cancel_job(self, job_id: str) -> None:
        self.jobs_by_id[job_id] = replace(self.job(job_id), status="CANCELLED")

    def delete_job(self, job_id: str) -> None:
        self.job(job_id)
        del self.jobs_by_id[job_id]

    def close_session(self, session_id: str) -> None:
        self.closed_sessions.append(session_id)

    def close(self) -> None:
        pass


class WitnessRuntime(FakeRuntime):
    """A FakeRuntime that calls ``before_run(tags)`` as a submission reaches it (before the job
    exists), so a test can look at what qrt had made durable by then."""

    def __init__(self, before_run: Callable[[Sequence[str]], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.before_run = before_run

    def run(self, program_id: str, inputs: Mapping[str, Any], **kwargs: Any) -> JobInfo:
        self.before_run(tuple(kwargs.get("tags", ())))
        return super().run(program_id, inputs, **kwargs)
