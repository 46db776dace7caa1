"""Refresh: read what the runtime holds for everything the lockfile and manifests name.

The only code on the plan path that talks to the runtime; it reads and never writes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from qrt_apply.errors import NotFoundError
from qrt_apply.runtime.base import JobInfo, ProgramInfo, Runtime

__all__ = ["Observed", "observe"]


@dataclass(frozen=True)
class Observed:
    programs: Mapping[str, ProgramInfo | None] = field(default_factory=dict)  # by id; None: gone
    # name -> id of the caller's own programs among those named in ``observe(names=...)``
    names: Mapping[str, str] = field(default_factory=dict)
    jobs: Mapping[str, JobInfo | None] = field(default_factory=dict)  # by id; None: forgotten
    tagged: Mapping[str, JobInfo] = field(default_factory=dict)  # submission tag -> job
    backends: tuple[str, ...] | None = None


def _program(runtime: Runtime, program_id: str) -> ProgramInfo | None:
    try:
        return runtime.program(program_id)
    except NotFoundError:
        return None


def _job(runtime: Runtime, job_id: str) -> JobInfo | None:
    try:
        return runtime.job(job_id, include_params=False)
    except NotFoundError:
        return None


def _tagged(runtime: Runtime, tag: str) -> JobInfo | None:
    found = runtime.jobs(tags=[tag], limit=1)
    return found[0] if found else None


def observe(
    runtime: Runtime,
    lock: Mapping[str, Any],
    *,
    names: Collection[str] = (),
    parallelism: int = 4,
) -> Observed:
    """Read the runtime for everything in ``lock``, and look up which of ``names`` (programs the
    manifests want) already exist on the runtime as the caller's own (someone else's public
    program of the same name is no conflict)."""
    program_ids = sorted({rec["id"] for rec in lock.get("programs", {}).values() if rec.get("id")})
    job_ids: set[str] = set()
    tags: set[str] = set()
    for rec in lock.get("jobs", {}).values():
        status = rec.get("status")
        if status in ("QUEUED", "RUNNING") and rec.get("id"):
            job_ids.add(rec["id"])
        elif status == "SUBMITTING" and rec.get("submission_tag"):
            tags.add(rec["submission_tag"])
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        listed = pool.submit(runtime.programs)
        backends = pool.submit(runtime.backends)
        programs = dict(
            zip(program_ids, pool.map(lambda i: _program(runtime, i), program_ids), strict=True)
        )
        ordered_jobs = sorted(job_ids)
        jobs = dict(
            zip(ordered_jobs, pool.map(lambda i: _job(runtime, i), ordered_jobs), strict=True)
        )
        ordered_tags = sorted(tags)
        found = dict(
            zip(ordered_tags, pool.map(lambda t: _tagged(runtime, t), ordered_tags), strict=True)
        )
        wanted = set(names)
        same_name = [p.id for p in listed.result() if p.name in wanted]
        found_programs = [p for p in pool.map(lambda i: _program(runtime, i), same_name) if p]
        owned = {p.name: p.id for p in found_programs if p.data is not None}
        backend_names = tuple(sorted(b.name for b in backends.result()))
    return Observed(
        programs=programs,
        names=owned,
        jobs=jobs,
        tagged={tag: job for tag, job in found.items() if job is not None},
        backends=backend_names,
    )
