"""validate, plan, apply, refresh, unlock: the commands that reconcile manifests with a runtime."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError, LockfileError
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.model import DesiredState
from qrt_apply.plan import Plan, make_plan, observe
from qrt_apply.plan.saved import desired_digest, load_plan_file, save_plan_file
from qrt_apply.render.console import TerminalConsole
from qrt_apply.render.plan_view import render_plan
from qrt_apply.render.results_view import drift_summary

__all__ = ["COMMANDS"]

_target_opt = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ADDR",
    help="Limit to this address (program.NAME, batch.NAME, job.BATCH/JOB); repeatable.",
)
_replace_opt = click.option(
    "--replace",
    "replace",
    multiple=True,
    metavar="ADDR",
    help="Force re-upload of a program or rerun of a job; repeatable.",
)
_prune_opt = click.option(
    "--prune", is_flag=True, help="Delete programs (and forget jobs) gone from the manifests."
)
# After Ctrl-C the embedded runtime stops the jobs it runs: nothing keeps running once qrt has
# exited, and the lockfile already says where each job stands.
_STOPPED_JOBS = (
    "Jobs the embedded runtime was running were stopped and queued again; "
    "`qrt apply` or `qrt refresh` runs them."
)
_parallelism_opt = click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="How many runtime calls to make at once (default: qrt.yaml parallelism, else 4).",
)


def _load(app: Any) -> tuple[Any, DesiredState, Lockfile]:
    project = app.project()
    desired = load_desired_state(project.root, project.manifests_dir)
    lock = Lockfile.load(project.lockfile, journal=_journal(project))
    return project, desired, lock


def _journal(project: Any) -> Path:
    """Where apply journals its steps between writes of qrt.lock (git-ignored local state)."""
    return Path(project.state_dir) / JOURNAL_NAME


def _check_addresses(desired: DesiredState, lock: Lockfile, addresses: tuple[str, ...]) -> None:
    known = set(lock.programs()) | set(lock.jobs())
    known |= {f"program.{name}" for name in desired.programs}
    known |= {f"batch.{name}" for name in desired.batches}
    known |= {job.address for job in desired.jobs()}
    for address in addresses:
        if address not in known:
            raise ConfigError(f"unknown address {address!r} (see `qrt show` for what exists)")


def _make_plan(
    app: Any,
    desired: DesiredState,
    lock: Lockfile,
    *,
    refresh: bool,
    prune: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    parallelism: int,
    lock_only: bool = False,
) -> Plan:
    """The plan against the project's runtime; with ``lock_only`` no runtime is opened at all and
    the lockfile stands for the runtime."""
    _check_addresses(desired, lock, targets + replace)
    observed = None
    if lock_only:
        target = lock.target or {}
    else:
        runtime = app.open_runtime()
        lock.check_target(runtime.target)
        target = runtime.target.to_json()
        if refresh:
            observed = observe(
                runtime, lock.snapshot(), names=desired.programs, parallelism=parallelism
            )
    return make_plan(
        desired,
        lock.snapshot(),
        observed,
        prune=prune,
        targets=targets,
        replace=replace,
        lock_digest=lock.digest(),
        target=target,
    )


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def validate(app: Any, directory: Path | None) -> int:
    """Check the manifests offline: schemas, references, $file paths, job inputs."""
    if directory is not None:
        app.project_dir = directory
    project = app.project()
    desired = load_desired_state(project.root, project.manifests_dir)
    jobs = len(desired.jobs())
    click.echo(
        f"Valid: {len(desired.programs)} program(s), {len(desired.batches)} batch(es), {jobs} job(s)."
    )
    return 0


@click.command()
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan for `qrt apply PLANFILE`.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@_target_opt
@_replace_opt
@_prune_opt
@click.option(
    "--refresh/--no-refresh",
    default=True,
    help="Read the runtime first (default) or trust qrt.lock.",
)
@click.option(
    "--lock-only", is_flag=True, help="No runtime at all: compare the manifests with qrt.lock."
)
@_parallelism_opt
@click.pass_obj
def plan(
    app: Any,
    detailed_exitcode: bool,
    out: Path | None,
    fmt: str,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    prune: bool,
    refresh: bool,
    lock_only: bool,
    parallelism: int | None,
) -> int:
    """Show what apply would change on the runtime."""
    if out is not None and lock_only:
        raise ConfigError("--out needs a plan made against the runtime (drop --lock-only)")
    project, desired, lock = _load(app)
    if not lock_only:
        app.open_runtime(read_only=True)  # a plan only looks: it never starts a job running
    result = _make_plan(
        app,
        desired,
        lock,
        refresh=refresh,
        prune=prune,
        targets=targets,
        replace=replace,
        parallelism=parallelism or project.parallelism,
        lock_only=lock_only,
    )
    if out is not None:
        save_plan_file(out, result, desired_digest(desired))
    click.echo(render_plan(result, fmt), nl=False)
    if out is not None and fmt == "text":
        click.echo(f"\nSaved the plan to {out}; `qrt apply {out}` carries out exactly this plan.")
    return 2 if detailed_exitcode and result.has_changes else 0


@click.command()
@click.argument(
    "planfile", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--wait/--no-wait", default=True, help="Wait for submitted jobs (default) or return at once."
)
@_target_opt
@_replace_opt
@_prune_opt
@_parallelism_opt
@click.pass_obj
def apply(
    app: Any,
    planfile: Path | None,
    auto_approve: bool,
    wait: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    prune: bool,
    parallelism: int | None,
) -> int:
    """Make the runtime match the manifests and record what happened in qrt.lock."""
    from qrt_apply.apply import Applier

    project, desired, _ = _load(app)
    workers = parallelism or project.parallelism
    with ApplyLock(project.state_dir).hold():
        lock = Lockfile.load(project.lockfile, journal=_journal(project))  # re-read under the lock
        if planfile is not None:
            if targets or replace or prune:
                raise ConfigError(
                    "a saved plan is applied as it is; --target/--replace/--prune belong to `qrt plan`"
                )
            runtime = app.open_runtime()
            lock.check_target(runtime.target)
            result = load_plan_file(
                planfile,
                lock_digest=lock.digest(),
                desired=desired_digest(desired),
                target=runtime.target.to_json(),
            )
            auto_approve = True
        else:
            result = _make_plan(
                app,
                desired,
                lock,
                refresh=True,
                prune=prune,
                targets=targets,
                replace=replace,
                parallelism=workers,
            )
        click.echo(render_plan(result), nl=False)
        if not result.has_changes:
            return 0
        if not auto_approve:
            if not sys.stdin.isatty():
                raise ConfigError("no terminal to ask for approval: run `qrt apply --auto-approve`")
            click.echo("")
            answer = click.prompt(
                "Do you want to perform these actions? Only 'yes' will be accepted",
                default="",
                show_default=False,
            )
            if answer.strip() != "yes":
                click.echo("Apply cancelled.")
                return 1
        click.echo("")
        runtime = app.open_runtime()
        hand_over = getattr(runtime, "hand_over_on_close", None)
        if not wait and hand_over is not None:
            # The embedded runtime lives in this process: at exit it hands its jobs over to a
            # detached runner, which runs them to completion; `qrt refresh` collects them.
            hand_over(detach=True)
        applier = Applier(runtime, lock, desired, TerminalConsole(), parallelism=workers, wait=wait)
        try:
            report = applier.apply(result)
        except KeyboardInterrupt:
            stopped = app.interrupted()
            click.echo(
                "\nInterrupted. qrt.lock keeps everything done so far; run `qrt apply` again to "
                "continue (no completed job is rerun, no submitted job is submitted twice).",
                err=True,
            )
            if stopped:
                click.echo(_STOPPED_JOBS, err=True)
            return 130
        finally:
            lock.close()  # qrt.lock written, the journal removed, however the apply ended
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(report.done.items())) or "nothing"
    click.echo(f"\nApply complete: {done}.")
    for line in drift_summary(report.drift):
        click.echo(line)
    if report.pending:
        click.echo(f"{len(report.pending)} job(s) still running; `qrt refresh` collects them.")
    if report.failed:
        click.echo(
            f"{len(report.failed)} job(s) did not complete: {', '.join(report.failed)}", err=True
        )
        return 1
    return 0


@click.command()
@_parallelism_opt
@click.option(
    "--wait", is_flag=True, help="Block until every in-flight job is final (default: poll once)."
)
@click.pass_obj
def refresh(app: Any, parallelism: int | None, wait: bool) -> int:
    """Poll in-flight jobs once, collect the final ones into qrt.lock; submits nothing."""
    from qrt_apply.apply import Applier

    project, desired, _ = _load(app)
    workers = parallelism or project.parallelism
    with ApplyLock(project.state_dir).hold():
        lock = Lockfile.load(project.lockfile, journal=_journal(project))
        runtime = app.open_runtime()
        lock.check_target(runtime.target)
        observed = observe(runtime, lock.snapshot(), parallelism=workers)
        full = make_plan(desired, lock.snapshot(), observed)
        waits = tuple(a for a in full.actions if a.kind == "wait")
        if not waits:
            click.echo("Nothing in flight.")
            return 0
        hand_over = getattr(runtime, "hand_over_on_close", None)
        if not wait and hand_over is not None:
            # The embedded runtime runs jobs in this process: without --wait a detached runner
            # takes them over at exit, as after `apply --no-wait`, so they still finish.
            hand_over(detach=True)
        applier = Applier(runtime, lock, desired, TerminalConsole(), parallelism=workers, wait=wait)
        running: list[str] = []
        try:
            report = applier.apply(Plan(actions=waits, target=full.target))
            if not wait:
                in_flight = {}
                for address in report.pending:
                    job_id = (lock.job(address) or {}).get("id")
                    if job_id:
                        in_flight[address] = str(job_id)
                running = applier.poll_once(in_flight)
                lock.save()
        except KeyboardInterrupt:
            stopped = app.interrupted()
            click.echo("\nInterrupted. qrt.lock keeps the results collected so far.", err=True)
            if stopped:
                click.echo(_STOPPED_JOBS, err=True)
            return 130
        finally:
            lock.close()  # qrt.lock written, the journal removed, however the apply ended
    click.echo(f"Collected {len(report.finished)} job(s).")
    for line in drift_summary(report.drift):
        click.echo(line)
    if running:
        click.echo(
            f"{len(running)} job(s) still running; `qrt refresh` again (or `qrt refresh --wait`) "
            "collects them."
        )
    return 1 if report.failed else 0


@click.command()
@click.option("--force", is_flag=True, help="Release it even if a live process holds it.")
@click.pass_obj
def unlock(app: Any, force: bool) -> int:
    """Release the apply lock left by an apply that is gone."""
    project = app.project()
    lock = ApplyLock(project.state_dir)
    holder = lock.holder()
    who = f" held by pid {holder.get('pid')} on {holder.get('host')}" if holder else ""
    if lock.held_by_live_process() and not force:
        raise LockfileError(
            f"the apply lock is{who} and that apply is still running; "
            "wait for it (or `qrt unlock --force` if you are sure it is stuck)"
        )
    if lock.force_release():
        click.echo(f"Released the apply lock{who}.")
    else:
        click.echo("No apply lock to release.")
    return 0


COMMANDS = (validate, plan, apply, refresh, unlock)
