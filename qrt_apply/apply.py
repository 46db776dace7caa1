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
from qrt_apply.lockfile import Lockfile, push_history
from qrt_apply.model import DesiredState, JobSpec, ProgramSpec, submission_tag
from qrt_apply.moves import rename_steps
from qrt_apply.plan.jobdiff import job_definition
from qrt_apply.plan.model import Action, Plan
from qrt_apply.plan.refresh import poll_jobs
from qrt_apply.render.console import Console
from qrt_apply.results.canonical import readable_text
from qrt_apply.results.drift import compare_results, drift_words, tolerance_of
from qrt_apply.results.report import previous_completed
from qrt_apply.runtime.base import FINAL_STATUSES, SUBMIT_TAG_PREFIX, JobInfo, Runtime

__all__ = ["ApplyReport", "Applier"]

ERROR_TEXT_LIMIT = 64 * 1024
# Submission intents are journaled this many at a time, ahead of their POSTs, under one fsync: a
# sweep of thousands of jobs pays one fsync per window instead of one per job.
INTENT_WINDOW = 64
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


class Applier:
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
    def _program_id(self, job: JobSpec) -> str:
        if job.program.kind != "managed":
            return job.program.value
        record = self.lock.program(f"program.{job.program.value}")
        if not record or not record.get("id"):
            raise QrtError(f"{job.address}: program.{job.program.value} has no id in the lockfile")
        return str(record["id"])

    def _submit_jobs(self, actions: list[Action]) -> list[str]:
        """Submit run/rerun actions (adopt or keep waits); returns every address to wait for."""
        groups: dict[str, list[Action]] = {}
        singles: list[Action] = []
        addresses = []
        for action in actions:
            if action.kind == "forget":
                self.lock.set_job(action.address, None)
                self.console.step(action.address, "forgotten")
                self.report.count("forget")
                continue
            addresses.append(action.address)
            job = self._jobs[action.address]
            if job.session and action.kind in ("run", "rerun"):
                groups.setdefault(job.batch, []).append(action)
            else:
                singles.append(action)

        # A runtime with explicit sessions (IBM Quantum Platform: dedicated or batch mode) gets
        # one opened right before the group's first POST, so jobs adopted by tag open none; the
        # others start one with their first job and the rest join it.
        opener: Callable[[str | None, str], str] | None = getattr(
            self.runtime, "open_session", None
        )

        def session_batch(group: list[Action]) -> None:
            session_id: str | None = None
            opened: list[str] = []

            def open_session(job: JobSpec) -> str:
                assert opener is not None
                opened.append(opener(job.backend, job.session_mode))
                return opened[0]

            try:
                for action in group:
                    if self._stop.is_set():
                        break
                    if opener is not None:
                        self._job_action(
                            action,
                            session_id=opened[0] if opened else None,
                            open_session=None if opened else open_session,
                        )
                        continue
                    info = self._job_action(
                        action, session_id=session_id, start_session=session_id is None
                    )
                    if info is not None and session_id is None:
                        session_id = info.session_id or info.id
            finally:  # closed however the group ended: the jobs in it still run to the end
                if opener is not None:
                    session_id = opened[0] if opened else None
                if session_id:
                    try:
                        self.runtime.close_session(session_id)
                    except QrtError as exc:
                        self.console.warn(f"could not close session {session_id}: {exc}")

        tasks: list[Callable[[], object]] = [
            partial(session_batch, group) for group in groups.values()
        ]
        tasks += [partial(self._job_action, action) for action in singles]
        self._order = [
            a.address
            for a in [*(a for g in groups.values() for a in g), *singles]
            if a.kind in ("run", "rerun")
        ]
        try:
            self._run_parallel(tasks)
        finally:
            self._withdraw_intents()
        return addresses

    def _journal_intent(self, address: str) -> dict[str, Any]:
        """The ``SUBMITTING`` record of ``address``, durable on disk when this returns. When it is
        not journaled yet, it is journaled with the next intents in submission order (at most
        ``INTENT_WINDOW``), and one fsync covers them all."""
        with self._intent_guard:
            if address not in self._intents:
                window = [address]
                while self._next_intent < len(self._order) and len(window) < INTENT_WINDOW:
                    ahead = self._order[self._next_intent]
                    self._next_intent += 1
                    if ahead != address and ahead not in self._intents:
                        window.append(ahead)
                for each in window:
                    previous = self.lock.job(each)
                    job = self._jobs[each]
                    intent = self._submitting_record(
                        job, self._interrupted_job(job, previous or {})
                    )
                    self._intents[each] = previous
                    self.lock.set_job(each, intent, durable=each == window[-1])
            record = self.lock.job(address)
            assert record is not None and record["status"] == "SUBMITTING"
            self._intents.pop(address)
            return record

    def _withdraw_intents(self) -> None:
        """Intents journaled ahead whose POST was never sent (the apply stopped first) get their
        earlier records back: the next apply runs them as it would have."""
        with self._intent_guard:
            for address, previous in self._intents.items():
                self.lock.set_job(address, previous)
            self._intents.clear()

    def _job_action(
        self,
        action: Action,
        *,
        session_id: str | None = None,
        start_session: bool = False,
        open_session: Callable[[JobSpec], str] | None = None,
    ) -> JobInfo | None:
        job = self._jobs[action.address]
        if action.kind == "wait":
            adopt = action.detail("adopt_id")
            if adopt:
                self.lock.update_job(action.address, id=adopt, status="QUEUED")
                self.console.step(action.address, f"adopted {adopt}")
            return None
        if self._stop.is_set():
            return None  # interrupted: the job keeps its old record and the next apply runs it
        # Durable before the POST: the tag is how the next plan finds the job if qrt dies now.
        tag = self._journal_intent(action.address)["submission_tag"]
        # The tag may already be on the runtime: an earlier apply died after the POST (the plan may
        # predate its acceptance, or ran with --no-refresh), or another checkout of this commit
        # submitted it. Adopting that job is what makes the submission happen once; against a
        # runtime without idempotency keys two applies can still race between look-up and POST.
        found = self.runtime.jobs(tags=[tag], limit=1)
        if found:
            info = found[0]
            self._record_submitted(action.address, info)
            self.console.step(action.address, f"adopted {info.id}, already submitted")
            self.report.count(action.kind)
            return info
        runtime_options = job.runtime_options
        if open_session is not None and session_id is None:
            session_id = open_session(job)
        info = self.runtime.run(
            self._program_id(job),
            job.params(),
            backend=job.backend,
            max_execution_time=runtime_options.get("max_execution_time"),
            log_level=runtime_options.get("log_level"),
            tags=[*job.tags, tag],
            session_id=session_id,
            start_session=start_session and job.session,
        )
        self._record_submitted(action.address, info)
        self.console.step(action.address, f"submitted {info.id} ({action.kind})")
        self.report.count(action.kind)
        return info

    def _interrupted_job(self, job: JobSpec, previous: Mapping[str, Any]) -> Mapping[str, Any]:
        """``previous`` with the job its interrupted submission made, if that submission was of
        another job definition (the manifests changed since) and reached the runtime: the rerun
        pushes it to ``history`` with its id, so it is not unknown to the lockfile."""
        tag = previous.get("submission_tag")
        if (
            previous.get("status") != "SUBMITTING"
            or previous.get("digest") == job.digest
            or not tag
        ):
            return previous
        found = self.runtime.jobs(tags=[tag], limit=1)
        if not found:
            return previous
        info = found[0]
        return {
            **previous,
            "id": info.id,
            "status": info.status,
            "backend": info.backend,
            "created": info.created,
        }

    def _submitting_record(self, job: JobSpec, previous: Mapping[str, Any]) -> dict[str, Any]:
        """The ``SUBMITTING`` record journaled before a job's POST. A submission of the same job
        definition that was interrupted keeps its tag, run number and history: it is the same
        submission sent again, never a second one. Otherwise this is run ``run`` of the address,
        one past the previous run's number (``history`` is capped, so it cannot be the count)."""
        if (
            previous.get("status") == "SUBMITTING"
            and previous.get("digest") == job.digest
            and str(previous.get("submission_tag") or "").startswith(SUBMIT_TAG_PREFIX)
        ):
            run = int(previous.get("run", len(previous.get("history") or [])))
            tag = str(previous["submission_tag"])
            history = list(previous.get("history") or [])
        else:
            history = push_history(previous)
            last = previous.get("run")
            run = max(len(history), int(last) + 1) if isinstance(last, int) else len(history)
            tag = submission_tag(self.runtime.target.to_json(), job.address, job.digest, run)
        return {
            "batch": job.batch,
            "program": job.program.describe(),
            "digest": job.digest,
            "definition": self.lock.store_definition(job_definition(job)),
            "status": "SUBMITTING",
            "submission_tag": tag,
            "run": run,
            "history": history,
        }

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
