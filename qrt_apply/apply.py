"""Carry a Plan out against a Runtime, journaling every step to the lockfile as it happens.

Stages run in order: programs (create, update, set-visibility, delete) then jobs (run, rerun, wait).
Within a stage independent work runs in parallel. Before each submission the job's record is written
as ``SUBMITTING`` with a ``submission_tag`` that the job carries on the runtime, derived from
(target, address, job digest, run number) so that every retry, every later apply and every other
checkout of the same commit sends the same tag; it is looked up on the runtime before each POST and
a job carrying it is adopted. If the process dies between submit and record, the next apply finds
the job by its tag, so no job is submitted twice and none is unknown to the lockfile. Program uploads are journaled the same way
(``pending: create``) and adopted by name. Those two records are written ``durable`` (fsynced before
the runtime call); the other steps may be lost by a machine crash, as the next plan redoes them.
The submitting itself is :mod:`qrt_apply.submit`; this module drives the stages, moves, programs,
and waits for and collects the jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from qrt_apply.errors import NotFoundError, QrtError
from qrt_apply.failures import failure_reason, scrub_error
from qrt_apply.lockfile import Lockfile
from qrt_apply.model import DesiredState, JobSpec, ProgramSpec
from qrt_apply.moves import rename_steps
from qrt_apply.plan.model import Action, Plan
from qrt_apply.plan.refresh import poll_jobs
from qrt_apply.render.console import Console
from qrt_apply.results.canonical import readable_text
from qrt_apply.results.drift import compare_results, drift_words, tolerance_of
from qrt_apply.results.report import previous_completed
from qrt_apply.runtime.base import FINAL_STATUSES, JobInfo, Runtime
from qrt_apply.submit import JobSubmitter

__all__ = ["ApplyReport", "Applier"]

ERROR_TEXT_LIMIT = 64 * 1024
_READ_EVERY = 10  # _wait_all: one round in this many reads each job instead of listing


@dataclass
class ApplyReport:
    done: dict[str, int] = field(default_factory=dict)
    finished: dict[str, str] = field(default_factory=dict)  # job address -> final status
    pending: list[str] = field(default_factory=list)  # submitted, not waited for
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # rerun address -> drift record

    def count(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1

    @property
    def failed(self) -> list[str]:
        return sorted(a for a, s in self.finished.items() if s != "COMPLETED")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Applier(JobSubmitter):
    def __init__(
        self,
        runtime: Runtime,
        lock: Lockfile,
        desired: DesiredState,
        console: Console,
        *,
        parallelism: int = 4,
        wait: bool = True,
        poll_interval: float = 0.25,
        max_poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.lock = lock
        self.desired = desired
        self.console = console
        self.parallelism = max(1, parallelism)
        self.wait = wait
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.sleep = sleep
        self.report = ApplyReport()
        self._jobs: dict[str, JobSpec] = {job.address: job for job in desired.jobs()}
        # Set when a parallel stage is left early (Ctrl-C): tasks under way submit no more jobs.
        self._stop = threading.Event()
        self._created: dict[str, str | None] = {}  # _wait_all: address -> the job's created
        # Submission order, and the intents journaled ahead of their POST: address -> the record
        # it replaced (restored if the POST is never sent).
        self._order: list[str] = []
        self._next_intent = 0
        self._intents: dict[str, dict[str, Any] | None] = {}
        self._intent_guard = threading.Lock()

    # --- driver -------------------------------------------------------------------------------
    def apply(self, plan: Plan) -> ApplyReport:
        self.lock.set_target(self.runtime.target)
        self._move([a for a in plan.actions if a.kind == "move"])
        programs = [a for a in plan.actions if a.stage == "programs" and a.kind != "move"]
        jobs = [a for a in plan.actions if a.stage == "jobs" and a.kind != "move"]
        self._run_parallel([partial(self._program_action, action) for action in programs])
        in_flight: dict[str, str] = {}
        for address in self._submit_jobs(jobs):
            record = self.lock.job(address) or {}
            if record.get("id"):
                in_flight[address] = record["id"]
        if self.wait:
            self._wait_all(in_flight)
        else:
            self.report.pending = sorted(in_flight)
        self.lock.save()
        return self.report

    def _run_parallel(self, tasks: list[Callable[[], object]]) -> None:
        """Run tasks on ``parallelism`` threads; the first QrtError is raised once all have ended."""
        if not tasks:
            return
        pool = ThreadPoolExecutor(max_workers=self.parallelism)
        futures: list[Future[object]] = [pool.submit(task) for task in tasks]
        try:
            errors = []
            for future in futures:
                try:
                    future.result()
                except QrtError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        except BaseException:
            self._stop.set()
            raise
        finally:
            # On Ctrl-C: let calls already under way finish and be recorded, start no new ones.
            pool.shutdown(wait=True, cancel_futures=True)

    def _move(self, actions: list[Action]) -> None:
        """Move entries to their new addresses (``Moved`` manifests): lockfile steps only, done
        before anything else, as the plan's other actions were planned on the moved entries."""
        if not actions:
            return
        data = self.lock.snapshot()
        renames = []
        for action in actions:
            section = "programs" if action.stage == "programs" else "jobs"
            old = action.detail("from")
            if old in data[section]:  # else moved already (a plan applied twice)
                renames.append((section, old, action.address))
        for section, address, record in rename_steps(data, renames):
            if section == "programs":
                self.lock.set_program(address, record)
            else:
                self.lock.set_job(address, record)
        for _, old, new in renames:
            self.console.step(new, f"moved from {old}")
            self.report.count("move")

    # --- programs -----------------------------------------------------------------------------
    def _program_record(self, spec: ProgramSpec, program_id: str) -> dict[str, Any]:
        # prune: false is kept here: --prune reads it once the Program is gone from the manifests
        return {
            **({} if spec.prune else {"prune": False}),
            "id": program_id,
            "name": spec.name,
            "source": spec.source_path,
            "content_digest": spec.content_digest,
            "metadata_digest": spec.metadata_digest,
            "description": spec.description,
            "max_execution_time": spec.max_execution_time,
            "spec": dict(spec.spec),
            "visibility": spec.visibility,
            "updated": _now(),
        }

    def _program_action(self, action: Action) -> None:
        name = action.address[len("program.") :]
        if action.kind == "delete":
            record = self.lock.program(action.address) or {}
            try:
                self.runtime.delete_program(record["id"])
            except NotFoundError:
                pass
            self.lock.set_program(action.address, None)
            self.console.step(action.address, f"deleted {record['id']}")
        elif action.kind == "forget":
            self.lock.set_program(action.address, None)
            self.console.step(action.address, "forgotten")
        else:
            spec = self.desired.programs[name]
            if action.kind == "create":
                self._create_program(action, spec)
            elif action.kind == "update":
                record = self.lock.program(action.address) or {}
                touches = action.detail("touches", ("data", "metadata"))
                if touches:  # none: only the lockfile changes (prune)
                    self.runtime.update_program(
                        record["id"],
                        data=spec.source if "data" in touches else None,
                        name=spec.name if "name" in touches else None,
                        description=spec.description if "metadata" in touches else None,
                        max_execution_time=spec.max_execution_time
                        if "metadata" in touches
                        else None,
                        spec=dict(spec.spec) if "metadata" in touches else None,
                    )
                visibility = record.get("visibility", spec.visibility)
                new = self._program_record(spec, record["id"])
                new["visibility"] = visibility
                self.lock.set_program(action.address, new)
                self.console.step(
                    action.address,
                    f"updated ({', '.join(touches)})" if touches else "recorded in qrt.lock",
                )
            elif action.kind == "set-visibility":
                record = self.lock.program(action.address) or {}
                self.runtime.set_program_visibility(record["id"], spec.is_public)
                record["visibility"] = spec.visibility
                self.lock.set_program(action.address, record)
                self.console.step(action.address, f"now {spec.visibility}")
        self.report.count(action.kind)

    def _create_program(self, action: Action, spec: ProgramSpec) -> None:
        adopt = action.detail("adopt_id")
        if adopt:
            self.runtime.update_program(
                adopt,
                data=spec.source,
                description=spec.description,
                max_execution_time=spec.max_execution_time,
                spec=dict(spec.spec),
            )
            self.runtime.set_program_visibility(adopt, spec.is_public)
            program_id = adopt
        else:
            # Durable before the upload: after a machine crash the next plan adopts it by name.
            self.lock.set_program(
                action.address, {"name": spec.name, "pending": "create"}, durable=True
            )
            program_id = self.runtime.upload_program(spec.source, spec.metadata())
        self.lock.set_program(action.address, self._program_record(spec, program_id))
        self.console.step(action.address, f"created {program_id}")

    # --- jobs ---------------------------------------------------------------------------------
    def _record_submitted(self, address: str, info: JobInfo) -> None:
        self.lock.update_job(
            address,
            id=info.id,
            status=info.status,
            backend=info.backend,
            session_id=info.session_id,
            created=info.created,
            submitted=_now(),
        )

    def _wait_all(self, in_flight: Mapping[str, str], *, once: bool = False) -> list[str]:
        """Collect the jobs of ``in_flight`` (address -> id) as they end; each round is one listing
        of the pending jobs plus a read of each id it did not return. ``once``: one round only.
        Returns the addresses still running."""
        remaining = dict(in_flight)
        # When the runtime said it created each job: listings ask only for jobs since the oldest.
        self._created = {a: (self.lock.job(a) or {}).get("created") for a in in_flight}
        interval = self.poll_interval
        rounds = 0
        while remaining:
            # Every tenth round (the first included) reads each job: a read is what lets the
            # embedded runtime re-queue a job whose runner died (lazy recovery); a listing is not.
            self._poll_round(remaining, listing=rounds % _READ_EVERY != 0)
            rounds += 1
            if once or not remaining:
                break
            self.lock.save_if_due()  # no step may come for a while: show the progress so far
            self.sleep(interval)
            interval = min(self.max_poll_interval, interval * 1.5)
        return sorted(remaining)

    def poll_once(self, in_flight: Mapping[str, str]) -> list[str]:
        """One round of ``_wait_all`` (``qrt refresh`` without ``--wait``): collect what is final,
        return the addresses still running."""
        return self._wait_all(in_flight, once=True)

    def _poll_round(self, remaining: dict[str, str], *, listing: bool) -> None:
        """Collect and drop from ``remaining`` every job that is final or gone."""
        ids = sorted(set(remaining.values()))
        created = [self._created.get(address) for address in remaining]
        seen = poll_jobs(
            self.runtime, ids, parallelism=self.parallelism, listing=listing, created=created
        )
        for address, job_id in sorted(remaining.items()):
            info = seen.get(job_id)
            if info is None:
                self.lock.update_job(address, status="CANCELLED", reason="GONE FROM THE RUNTIME")
                self.report.finished[address] = "CANCELLED"
                del remaining[address]
            elif info.status in FINAL_STATUSES:
                self.collect(address, info)
                del remaining[address]

    def collect(self, address: str, info: JobInfo) -> None:
        fields: dict[str, Any] = {
            "status": info.status,
            "reason": info.reason,
            "backend": info.backend,
            "session_id": info.session_id,
            "created": info.created,
            "started": info.started,
            "ended": info.ended,
        }
        text = self.runtime.job_result(info.id) if info.status != "CANCELLED" else ""
        drift = None
        if info.status == "COMPLETED":
            result = readable_text(text)  # plain JSON in qrt.lock, no __type__ blobs
            fields.update(self.lock.store_result(result))
            fields["error"] = None
            drift = self._drift(address, result)
            if drift is not None:
                fields["drift"] = drift
        else:
            fields.update({"result": None, "result_ref": None})
            # Scrubbed here too: another runtime may store qrt's frames or its machine's paths.
            fields["error"] = scrub_error(text)[-ERROR_TEXT_LIMIT:] if text else info.reason
        interim = self.runtime.job_interim_results(info.id)
        fields["interim_results"] = [readable_text(item) for item in interim] or None
        self.lock.update_job(address, **fields)
        self.report.finished[address] = info.status
        word = info.status if not info.reason else f"{info.status} ({info.reason})"
        why = failure_reason(fields["error"]) if info.status == "FAILED" else ""
        if why and why != info.reason:
            word += f" — {why}"
        if drift is not None:
            word += "; " + drift_words(drift)
        self.console.step(address, word)

    def _drift(self, address: str, result: Any) -> dict[str, Any] | None:
        """How far ``result`` is from the job's previous completed run (None: no such run), with
        ``past`` set when it exceeds the batch's ``result_tolerance``."""
        record = self.lock.job(address) or {}
        try:
            previous, old_result = previous_completed(self.lock, record)
        except QrtError as exc:  # the previous result file is gone: no drift, but say so
            self.console.warn(f"{address}: cannot compare with the previous run: {exc}")
            return None
        if not previous:
            return None
        job = self._jobs.get(address)
        batch = self.desired.batches.get(job.batch) if job is not None else None
        tolerance = tolerance_of(batch.result_tolerance if batch is not None else None)
        drift = compare_results(old_result, result)
        if not drift.comparable and not drift.unmatched:
            return None  # neither run has counts or expectation values (a program's own result)
        entry = drift.record(previous.get("id"))
        if drift.exceeds(tolerance):
            entry["past_tolerance"] = True
        self.report.drift[address] = entry
        return entry
