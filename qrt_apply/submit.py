"""The submitting side of :class:`~qrt_apply.apply.Applier`: run and rerun actions become jobs.

Each job's ``SUBMITTING`` record (with its ``submission_tag``) is journaled before its POST, up to
``INTENT_WINDOW`` intents ahead under one fsync; the tag is looked up on the runtime first and a
job carrying it is adopted, so a submission interrupted at any moment is never sent twice. Jobs of
a batch with ``session`` run in one session per batch. ``JobSubmitter`` is a mixin: ``Applier``
holds the state it uses and records what each POST returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from qrt_apply.errors import QrtError
from qrt_apply.lockfile import Lockfile, push_history
from qrt_apply.model import JobSpec, submission_tag
from qrt_apply.plan.jobdiff import job_definition
from qrt_apply.plan.model import Action
from qrt_apply.render.console import Console
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, JobInfo, Runtime

if TYPE_CHECKING:
    from qrt_apply.apply import ApplyReport

__all__ = ["INTENT_WINDOW", "JobSubmitter"]

# Submission intents are journaled this many at a time, ahead of their POSTs, under one fsync: a
# sweep of thousands of jobs pays one fsync per window instead of one per job.
INTENT_WINDOW = 64


class JobSubmitter:
    """Submits the jobs of a plan's job stage; mixed into ``Applier``, which sets these."""

    runtime: Runtime
    lock: Lockfile
    console: Console
    report: ApplyReport
    _jobs: dict[str, JobSpec]
    _stop: threading.Event
    _order: list[str]
    _next_intent: int
    _intents: dict[str, dict[str, Any] | None]
    _intent_guard: threading.Lock

    if TYPE_CHECKING:

        def _run_parallel(self, tasks: list[Callable[[], object]]) -> None: ...

        def _record_submitted(self, address: str, info: JobInfo) -> None: ...

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
