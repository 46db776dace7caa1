"""What :meth:`~qrt_apply.api.Project.apply` and :meth:`~qrt_apply.api.Project.refresh` do under
the apply lock: choose the plan, run an :class:`~qrt_apply.apply.Applier` over it (watched by a
console that shows progress) and sum up how it ended. ``Applier`` is imported on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from qrt_apply.api_plan import plan_to_apply
from qrt_apply.api_types import ApplyResult, RefreshResult
from qrt_apply.errors import ConfigError
from qrt_apply.plan import Plan, make_plan, observe
from qrt_apply.render.console import Console, LogConsole

if TYPE_CHECKING:
    from qrt_apply.api import PathLike, Project
    from qrt_apply.apply import ApplyReport

__all__ = ["run_apply", "run_refresh", "watching"]


def watching(
    console: Console | None, verb: str, plan: Plan, report: ApplyReport, *, collect: bool
) -> AbstractContextManager[Any]:
    """A console that shows progress (``render.progress.ProgressConsole``) watches the report
    while the work runs."""
    watch = getattr(console, "watch", None)
    if watch is None:
        return nullcontext()
    context: AbstractContextManager[Any] = watch(verb, plan, report, collect=collect)
    return context


def run_apply(
    project: Project,
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
    """:meth:`Project.apply` (which documents the arguments)."""
    from qrt_apply.apply import Applier

    if plan is not None and (targets or replace or prune):
        raise ConfigError(
            "a saved plan is applied as it is; --target/--replace/--prune belong to `qrt plan`"
        )
    desired = project.desired()
    workers = parallelism or project.settings.parallelism
    with project._locked() as lock:
        started = time.monotonic()
        chosen = plan_to_apply(project, plan, desired, lock, targets, replace, prune, workers)
        if on_plan is not None:
            on_plan(chosen)
        if not chosen.has_changes:
            return ApplyResult(plan=chosen, outcome="no-changes")
        if approve is not None and not approve(chosen):
            return ApplyResult(plan=chosen, outcome="cancelled")
        runtime = project.open_runtime()
        if not wait:
            project._detach_at_exit(runtime)
        applier = Applier(
            runtime, lock, desired, console or LogConsole(), parallelism=workers, wait=wait
        )
        with watching(console, "apply", chosen, applier.report, collect=wait):
            report = project._run(lambda: applier.apply(chosen))
    return ApplyResult(
        plan=chosen,
        outcome="applied",
        done=dict(report.done),
        finished=dict(report.finished),
        pending=tuple(report.pending),
        elapsed=time.monotonic() - started,
        drift=dict(report.drift),
    )


def run_refresh(
    project: Project,
    *,
    wait: bool = False,
    console: Console | None = None,
    parallelism: int | None = None,
) -> RefreshResult:
    """:meth:`Project.refresh` (which documents the arguments)."""
    from qrt_apply.apply import Applier

    desired = project.desired()
    workers = parallelism or project.settings.parallelism
    with project._locked() as lock:
        started = time.monotonic()
        runtime = project.open_runtime()
        lock.check_target(runtime.target)
        observed = observe(runtime, lock.view(), backends=(), parallelism=workers)
        full = make_plan(desired, lock.view(), observed)
        waits = tuple(a for a in full.actions if a.kind == "wait")
        if not waits:
            return RefreshResult()
        if not wait:
            project._detach_at_exit(runtime)
        applier = Applier(
            runtime, lock, desired, console or LogConsole(), parallelism=workers, wait=wait
        )

        def collect() -> tuple[ApplyReport, list[str]]:
            report = applier.apply(waiting)
            if wait:
                return report, []
            in_flight = {}
            for address in report.pending:
                job_id = (lock.job(address) or {}).get("id")
                if job_id:
                    in_flight[address] = str(job_id)
            running = applier.poll_once(in_flight)
            lock.save()
            return report, running

        # A Moved manifest's moves go first (lockfile only): the waits are at the new addresses.
        moves = tuple(a for a in full.actions if a.kind == "move")
        waiting = Plan(actions=moves + waits, target=full.target)
        with watching(console, "refresh", waiting, applier.report, collect=True):
            report, running = project._run(collect)
    return RefreshResult(
        in_flight=tuple(a.address for a in waits),
        finished=dict(report.finished),
        running=tuple(running),
        elapsed=time.monotonic() - started,
        drift=dict(report.drift),
    )
