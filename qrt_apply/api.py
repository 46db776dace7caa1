"""The Python API: qrt's use cases as methods of a :class:`Project`.

::

    import qrt_apply

    with qrt_apply.Project.load("path/to/repo") as project:
        project.validate()                      # offline: schemas, references, $file paths
        plan = project.plan()                   # what apply would change on the runtime
        if plan.has_changes:
            outcome = project.apply(plan)       # exactly that plan, refused once stale
            print(outcome.done, outcome.failed)
        project.refresh(wait=True)              # collect jobs still running
        print(project.results("job.bell/bell").result)

This is the layer the ``qrt`` commands are thin shells over: they parse options, call one method,
render what comes back and turn errors into exit codes. Nothing here prints; progress goes to the
:class:`~qrt_apply.render.console.Console` a caller passes (by default the ``qrt_apply`` logger).
Every error a user can cause is a :class:`~qrt_apply.errors.QrtError`. An apply or refresh takes the
project's apply lock (``.qrt/``) for its whole run and writes ``qrt.lock`` however it ends; Ctrl-C
during one raises :class:`Interrupted` once the lockfile holds everything done so far.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from qrt_apply.api_apply import run_apply, run_refresh
from qrt_apply.api_plan import make_project_plan
from qrt_apply.api_types import ApplyResult, Interrupted, JobResult, RefreshResult, Validation
from qrt_apply.errors import ConfigError, LockfileError, PlanError
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.model import DesiredState
from qrt_apply.moves import apply_steps, forget_steps, move_steps
from qrt_apply.plan import Plan
from qrt_apply.plan.saved import desired_digest, save_plan_file
from qrt_apply.project import Project as Settings
from qrt_apply.project import load_project
from qrt_apply.render.console import Console, LogConsole
from qrt_apply.runtime.base import Runtime

if TYPE_CHECKING:
    from qrt_apply.results.report import Comparisons
    from qrt_apply.results.sweep import Sweep

__all__ = [
    "ApplyResult",
    "Interrupted",
    "JobResult",
    "Project",
    "RefreshResult",
    "Validation",
]

PathLike = str | os.PathLike[str]
_PLANS_KEPT = 16  # the most recent plans of a Project that apply() still accepts


class Project:
    """A qrt project (a directory with ``manifests/``, optionally ``qrt.yaml``, and ``qrt.lock``) and
    the runtime it targets. The runtime is opened on first need and closed by :meth:`close` (or the
    ``with`` block); a ``runtime`` passed in is used as it is and left open."""

    def __init__(
        self, settings: Settings, *, account: str | None = None, runtime: Runtime | None = None
    ) -> None:
        self.settings = settings
        self.account = account
        self._runtime = runtime
        self._owns_runtime = False
        self._interrupted = False
        # Plans made here, by id, with the digest of the manifests they were made from and whether
        # they are lock-only: apply carries out exactly such a plan, refused once the manifests
        # changed (the entry holds the plan, so its id is not reused while it is here).
        self._plans: dict[int, tuple[Plan, str, bool]] = {}

    @classmethod
    def load(
        cls,
        path: PathLike = ".",
        *,
        account: str | None = None,
        runtime: Runtime | None = None,
        env: str | None = None,
        lockfile: PathLike | None = None,
    ) -> Project:
        """Read ``qrt.yaml`` (if any) of the project at ``path``. ``account``: a saved account
        (see ``qrt account list``) instead of the project's target; ``runtime``: one to use;
        ``env``: an environment of qrt.yaml (its target and lockfile); ``lockfile``: another
        lockfile than qrt.yaml's (with local state of its own)."""
        settings = load_project(
            Path(path), env=env, lockfile=Path(lockfile) if lockfile is not None else None
        )
        return cls(settings, account=account, runtime=runtime)

    # --- the project and its runtime ----------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.settings.root

    def desired(self) -> DesiredState:
        """The manifests, read and checked now (every call reads them again)."""
        return load_desired_state(self.root, self.settings.manifests_dir)

    def lockfile(self) -> Lockfile:
        """``qrt.lock`` as it stands (a journal left by an apply that died is replayed first)."""
        return Lockfile.load(self.settings.lockfile, journal=self.settings.state_dir / JOURNAL_NAME)

    def open_runtime(self, *, read_only: bool = False) -> Runtime:
        """The project's runtime, opened once; ``read_only`` when only looking (it then starts no
        job running)."""
        if self._runtime is None:
            from qrt_apply.runtime.select import open_runtime

            self._runtime = open_runtime(
                self.root,
                account=self.account,
                config=self.settings.config,
                read_only=read_only,
                state_dir=self.settings.state_dir,
            )
            self._owns_runtime = True
        return self._runtime

    def close(self, *, interrupted: bool = False) -> None:
        """Close the runtime this project opened. After an interrupt the embedded runtime hands the
        jobs it runs over at once and starts nothing in the background."""
        runtime, self._runtime = self._runtime, None
        if runtime is None or not self._owns_runtime:
            return
        self._owns_runtime = False
        if interrupted or self._interrupted:
            hand_over = getattr(runtime, "hand_over_on_close", None)
            if hand_over is not None:
                hand_over(detach=False)
        runtime.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(interrupted=isinstance(exc, KeyboardInterrupt))

    # --- use cases ----------------------------------------------------------------------------
    def validate(self) -> Validation:
        """Check the manifests offline (schemas, references, ``$file`` paths, job inputs);
        raises :class:`~qrt_apply.errors.ManifestError` naming file and line."""
        desired = self.desired()
        return Validation(len(desired.programs), len(desired.batches), len(desired.jobs()))

    def plan(
        self,
        *,
        refresh: bool = True,
        prune: bool = False,
        targets: Sequence[str] = (),
        replace: Sequence[str] = (),
        parallelism: int | None = None,
        lock_only: bool = False,
    ) -> Plan:
        """What :meth:`apply` would change. ``refresh=False`` trusts qrt.lock for the runtime's
        state; ``lock_only`` opens no runtime at all (such a plan cannot be applied)."""
        desired = self.desired()
        lock = self.lockfile()
        if not lock_only:
            self.open_runtime(read_only=True)  # a plan only looks: it never starts a job running
        plan = make_project_plan(
            self,
            desired,
            lock,
            refresh=refresh,
            prune=prune,
            targets=tuple(targets),
            replace=tuple(replace),
            parallelism=parallelism or self.settings.parallelism,
            lock_only=lock_only,
        )
        self._plans[id(plan)] = (plan, desired_digest(desired), lock_only)
        while len(self._plans) > _PLANS_KEPT:  # a long-lived Project plans again and again
            del self._plans[next(iter(self._plans))]
        return plan

    def save_plan(self, plan: Plan, path: PathLike) -> None:
        """Write a plan made by :meth:`plan` for ``qrt apply FILE`` (or :meth:`apply` of the path)."""
        save_plan_file(Path(path), plan, self._digest_of(plan))

    def apply(
        self,
        plan: Plan | PathLike | None = None,
        *,
        approve: Callable[[Plan], bool] | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        console: Console | None = None,
        wait: bool = True,
        targets: Sequence[str] = (),
        replace: Sequence[str] = (),
        prune: bool = False,
        parallelism: int | None = None,
    ) -> ApplyResult:
        """Make the runtime match the manifests and record what happened in qrt.lock.

        ``plan``: None plans afresh under the apply lock (``targets``, ``replace``, ``prune`` as
        for :meth:`plan`); a Plan from :meth:`plan`, or the path of a saved one, is carried out
        exactly and refused (:class:`~qrt_apply.errors.PlanError`) if qrt.lock, the manifests or
        the target changed since. ``on_plan`` sees the plan about to be carried out; ``approve``
        is asked when it has changes (False cancels; None approves). ``wait=False`` submits and
        returns; ``refresh`` collects later."""
        return run_apply(
            self,
            plan,
            approve=approve,
            on_plan=on_plan,
            console=console,
            wait=wait,
            targets=targets,
            replace=replace,
            prune=prune,
            parallelism=parallelism,
        )

    def refresh(
        self, *, wait: bool = False, console: Console | None = None, parallelism: int | None = None
    ) -> RefreshResult:
        """Poll the jobs qrt.lock has in flight once (``wait``: until each is final) and collect
        the final ones into qrt.lock. Submits nothing."""
        return run_refresh(self, wait=wait, console=console, parallelism=parallelism)

    def results(self, address: str) -> JobResult:
        """The recorded result of the completed job ``address`` (``job.BATCH/JOB``) as readable
        JSON; a job that did not complete is a :class:`~qrt_apply.errors.ConfigError` carrying its
        error text."""
        from qrt_apply.results.report import completed_result

        record, result = completed_result(self.lockfile(), address)
        interim = tuple(record.get("interim_results") or ())
        return JobResult(address, record, result, interim)

    def sweep(self, batch: str) -> Sweep:
        """The completed jobs of ``batch.NAME`` against its matrix variable (``results/sweep.py``)."""
        from qrt_apply.results.report import batch_sweep

        return batch_sweep(self.lockfile(), batch)

    def compare(self, address: str) -> Comparisons:
        """Each completed job of ``address`` (a job, or every job of ``batch.NAME``) against its
        previous completed run, with the tolerance the batch sets in the manifests."""
        from qrt_apply.results.report import compare_all

        return compare_all(self.lockfile(), self.desired(), address)

    def show(self, address: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """What qrt.lock records, as ``{"programs": {address: record}, "jobs": {...}}``: all of
        it, the one record at ``address``, or the jobs of ``batch.NAME``. The runtime is not
        called; an address qrt.lock does not hold is a :class:`~qrt_apply.errors.ConfigError`."""
        from qrt_apply.results.report import batch_jobs

        lock = self.lockfile()
        programs, jobs = lock.programs(), lock.jobs()
        if address is None:
            return {"programs": programs, "jobs": jobs}
        if address.startswith("batch."):
            return {"programs": {}, "jobs": batch_jobs(lock, address)}
        if address in programs:
            return {"programs": {address: programs[address]}, "jobs": {}}
        if address in jobs:
            return {"programs": {}, "jobs": {address: jobs[address]}}
        raise ConfigError(f"{address} is not in {lock.path.name}")

    def import_(
        self, address: str, object_id: str, *, console: Console | None = None
    ) -> dict[str, Any]:
        """Adopt runtime object ``object_id`` as ``address`` (``program.NAME`` or
        ``job.BATCH/JOB``, which the manifests must declare) into qrt.lock, under the apply lock
        (``qrt import``). The runtime is not changed; a job must be the manifests' job (program,
        backend, inputs) and a finished one has its result collected. Returns the record."""
        from qrt_apply.adopt import adopt

        desired = self.desired()
        with self._locked() as lock:
            return adopt(
                self.open_runtime(), lock, desired, address, object_id, console or LogConsole()
            )

    def move(self, source: str, dest: str) -> list[tuple[str, str]]:
        """Rename entries of qrt.lock (``qrt mv``): ``program.A`` to ``program.B``, ``batch.A`` to
        ``batch.B`` (all its jobs) or ``job.A/J`` to ``job.B/K``, so a renamed object is not created
        or run again. Returns the (old, new) addresses; the runtime is not called (a moved
        program is renamed there by the next apply)."""
        with self._locked() as lock:
            data = lock.snapshot()
            renames, steps = move_steps(data, source, dest)
            lock.replace_all(apply_steps(data, steps))
        return [(old, new) for _, old, new in renames]

    def forget(self, address: str) -> list[str]:
        """Drop the entries at ``address`` (``batch.NAME``: all its jobs) from qrt.lock and leave
        the runtime alone (``qrt forget``). Returns the addresses dropped."""
        with self._locked() as lock:
            data = lock.snapshot()
            steps = forget_steps(data, address)
            lock.replace_all(apply_steps(data, steps))
        return [dropped for _, dropped, _ in steps]

    def unlock(self, *, force: bool = False) -> dict[str, Any] | None:
        """Release the apply lock left by an apply that is gone; returns who held it (None: no
        lock). A lock held by a live process is released only with ``force``."""
        # Each environment has its own apply lock: without one chosen this raises, naming them.
        self.settings.lockfile  # noqa: B018
        apply_lock = ApplyLock(self.settings.state_dir)
        holder = apply_lock.holder()
        if apply_lock.held_by_live_process() and not force:
            who = f" held by pid {holder.get('pid')} on {holder.get('host')}" if holder else ""
            raise LockfileError(
                f"the apply lock is{who} and that apply is still running; "
                "wait for it (or `qrt unlock --force` if you are sure it is stuck)"
            )
        return holder if apply_lock.force_release() else None

    # --- internals ----------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[Lockfile]:
        """Hold the apply lock; yield qrt.lock re-read under it; write it however the block ends."""
        with ApplyLock(self.settings.state_dir).hold():
            lock = self.lockfile()
            try:
                yield lock
            finally:
                lock.close()  # qrt.lock written, the journal removed, however the apply ended

    def _run(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except KeyboardInterrupt as exc:
            self._interrupted = True
            stopped = hasattr(self._runtime, "hand_over_on_close")
            raise Interrupted(jobs_stopped=stopped) from exc

    def _detach_at_exit(self, runtime: Runtime) -> None:
        # The embedded runtime lives in this process: at close it hands its jobs over to a
        # detached runner, which runs them to completion; `refresh` collects them.
        hand_over = getattr(runtime, "hand_over_on_close", None)
        if hand_over is not None:
            hand_over(detach=True)

    def _digest_of(self, plan: Plan) -> str:
        made = self._plans.get(id(plan))
        if made is None or made[0] is not plan:
            raise PlanError("only a plan made by this Project's plan() can be saved or applied")
        if made[2]:
            raise ConfigError(
                "a lock-only plan cannot be saved or applied: plan against the runtime"
            )
        return made[1]
