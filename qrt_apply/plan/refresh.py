"""Refresh: read what the runtime holds for everything the lockfile and manifests name.

The only code on the plan path that talks to the runtime; it reads and never writes.

It reads listings, not objects one by one, so a converged plan costs the list pages and a few calls:

* Programs come from the paged program list. A program's source is fetched (``program()``) only when
  the listing cannot vouch for it: the runtime gives no ``data_digest`` for it (the real API does
  not; ``qrt serve`` and the embedded runtime do), that digest differs from the lockfile's
  ``content_digest``, or the program is missing from the list (deleted, or a listing that leaves
  it out). A listed ``data_digest`` also marks the program as the caller's own, which is what a
  name lookup needs.
* Jobs the lockfile has in flight come from the listing of pending jobs created since the oldest
  of them (``created_after``); only those it does not return (most likely final by now, whose
  results are fetched anyway) are read one by one.
* Fallback reads run on ``parallelism`` threads, never one thread per object.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from qrt_apply.errors import NotFoundError
from qrt_apply.runtime.base import BackendInfo, JobInfo, ProgramInfo, Runtime

__all__ = ["Observed", "listing_since", "observe", "poll_jobs"]

V = TypeVar("V")


@dataclass(frozen=True)
class Observed:
    programs: Mapping[str, ProgramInfo | None] = field(default_factory=dict)  # by id; None: gone
    # name -> id of the caller's own programs among those named in ``observe(names=...)``
    names: Mapping[str, str] = field(default_factory=dict)
    jobs: Mapping[str, JobInfo | None] = field(default_factory=dict)  # by id; None: forgotten
    tagged: Mapping[str, JobInfo] = field(default_factory=dict)  # submission tag -> job
    backends: tuple[str, ...] | None = None
    backend_info: Mapping[str, BackendInfo] = field(default_factory=dict)  # by name


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


def _each(pool: ThreadPoolExecutor, read: Callable[[str], V], keys: Iterable[str]) -> dict[str, V]:
    ordered = sorted(set(keys))
    return dict(zip(ordered, pool.map(read, ordered), strict=True))


def poll_jobs(
    runtime: Runtime,
    job_ids: Collection[str],
    *,
    pool: ThreadPoolExecutor | None = None,
    parallelism: int = 4,
    listing: bool = True,
    created: Iterable[str | None] = (),
) -> dict[str, JobInfo | None]:
    """The current state of ``job_ids`` (None: gone from the runtime): one listing of the pending
    jobs, then a read of each id the listing did not return. A single id is read directly, as the
    listing could only cost more; ``listing=False`` reads every id. Reads run on ``pool``, else on
    ``parallelism`` threads. ``created``: the creation times the runtime gave these jobs; when each
    is known the listing asks only for jobs created since the oldest (``created_after``), so it
    does not grow with the runtime's whole history of pending jobs."""
    if not job_ids:
        return {}
    found: dict[str, JobInfo | None] = {}
    if listing and len(job_ids) > 1:
        wanted = set(job_ids)
        since = listing_since(created)
        listed = runtime.jobs(pending=True, limit=None, created_after=since)
        found = {j.id: j for j in listed if j.id in wanted}
    rest = [i for i in job_ids if i not in found]
    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as own:
            found.update(_each(own, lambda i: _job(runtime, i), rest))
    else:
        found.update(_each(pool, lambda i: _job(runtime, i), rest))
    return found


def listing_since(created: Iterable[str | None]) -> str | None:
    """The ``created_after`` bound of a listing meant to return jobs created at ``created``: a
    second before the oldest (a runtime whose filter is strict, or rounds the times, still returns
    it). None when a time is missing or unreadable, or none is given: no bound."""
    oldest: datetime | None = None
    for text in created:
        try:
            moment = datetime.fromisoformat(text) if text else None
        except ValueError:
            moment = None
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        oldest = moment if oldest is None or moment < oldest else oldest
    if oldest is None:
        return None
    bound = oldest.astimezone(UTC) - timedelta(seconds=1)
    return bound.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _recorded_programs(lock: Mapping[str, Any]) -> dict[str, str | None]:
    """id -> the content digest the lockfile recorded for it."""
    out: dict[str, str | None] = {}
    for rec in lock.get("programs", {}).values():
        if rec.get("id"):
            out[str(rec["id"])] = rec.get("content_digest")
    return out


def observe(
    runtime: Runtime,
    lock: Mapping[str, Any],
    *,
    names: Collection[str] = (),
    backends: Collection[str] | None = None,
    parallelism: int = 4,
) -> Observed:
    """Read the runtime for everything in ``lock``, and look up which of ``names`` (programs the
    manifests want) already exist on the runtime as the caller's own (someone else's public
    program of the same name is no conflict)."""
    recorded = _recorded_programs(lock)
    job_ids: dict[str, str | None] = {}  # id -> created
    tags: set[str] = set()
    for rec in lock.get("jobs", {}).values():
        status = rec.get("status")
        if status in ("QUEUED", "RUNNING") and rec.get("id"):
            job_ids[rec["id"]] = rec.get("created")
        elif status == "SUBMITTING" and rec.get("submission_tag"):
            tags.add(rec["submission_tag"])
    wanted = set(names)
    # Fallback reads run in the pool while this thread waits: nothing in the pool waits on the
    # pool, so any ``parallelism`` (also 1) makes progress.
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        # the details of the backends the manifests use (None: of all)
        backend_list = pool.submit(runtime.backends, backends)
        listed = {p.id: p for p in runtime.programs()}
        programs: dict[str, ProgramInfo | None] = {}
        for program_id, digest in recorded.items():
            info = listed.get(program_id)
            # A listing carries no source: a listed digest equal to the recorded one says the
            # source is unchanged, and diff then keeps the recorded content digest.
            if info is not None and info.data_digest is not None and info.data_digest == digest:
                programs[program_id] = info
        unread = [i for i in recorded if i not in programs]
        programs.update(_each(pool, lambda i: _program(runtime, i), unread))
        # Whose is a program of a wanted name: a listed digest or a readable source says "mine".
        owned: dict[str, str] = {}
        unsure: list[str] = []
        for info in listed.values():
            if info.name not in wanted:
                continue
            seen = programs.get(info.id)
            if info.data_digest is not None or (seen is not None and seen.data is not None):
                owned.setdefault(info.name, info.id)
            elif info.id not in programs:
                unsure.append(info.id)
        for read in _each(pool, lambda i: _program(runtime, i), unsure).values():
            if read is not None and read.data is not None:
                owned.setdefault(read.name, read.id)
        observed_jobs = poll_jobs(runtime, sorted(job_ids), pool=pool, created=job_ids.values())
        found = _each(pool, lambda t: _tagged(runtime, t), tags)
        backend_info = {b.name: b for b in backend_list.result()}
    return Observed(
        programs=programs,
        names=owned,
        jobs=observed_jobs,
        tagged={tag: job for tag, job in found.items() if job is not None},
        backends=tuple(sorted(backend_info)),
        backend_info=backend_info,
    )
