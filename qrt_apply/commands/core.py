"""validate, plan, apply, refresh, unlock: thin shells over :mod:`qrt_apply.api`.

Each parses its options, calls one method of the command's ``Project`` (``app.api()``), renders what
comes back and returns the exit code; ``cli.py`` turns errors into messages.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError, ManifestError, QrtError
from qrt_apply.plan import Plan
from qrt_apply.render.console import TerminalConsole
from qrt_apply.render.plan_view import render_plan
from qrt_apply.render.progress import ProgressConsole, format_elapsed
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
_json_opt = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (stable keys) on stdout."
)
_parallelism_opt = click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="How many runtime calls to make at once (default: qrt.yaml parallelism, else 4).",
)


def _console(app: Any, *, as_json: bool) -> ProgressConsole:
    """Steps and progress: on stdout, or on stderr when stdout carries the JSON document."""
    stream = sys.stderr if as_json else sys.stdout
    return ProgressConsole(TerminalConsole(color=app.color, err=as_json), stream)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, sort_keys=True, indent=2))


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@_json_opt
@click.pass_obj
def validate(app: Any, directory: Path | None, as_json: bool) -> int:
    """Check the manifests offline: schemas, references, $file paths, job inputs."""
    if directory is not None:
        app.project_dir = directory
    try:
        found = app.api().validate()
    except QrtError as exc:
        if as_json:  # the document says what failed; the message still goes to stderr
            where = exc if isinstance(exc, ManifestError) else None
            error = {
                "message": str(exc),
                "path": where.path if where else None,
                "line": where.line if where else None,
            }
            _echo_json({"valid": False, "error": error})
        raise
    if as_json:
        _echo_json(found.to_json())
        return 0
    click.echo(
        f"Valid: {found.programs} program(s), {found.batches} batch(es), {found.jobs} job(s)."
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
    project = app.api()
    result = project.plan(
        refresh=refresh,
        prune=prune,
        targets=targets,
        replace=replace,
        parallelism=parallelism,
        lock_only=lock_only,
    )
    if out is not None:
        project.save_plan(result, out)
    # The plan names its environment (qrt.yaml `environments`): text, JSON, markdown title and marker.
    color = app.color is not False
    click.echo(render_plan(result, fmt, color=color), nl=False, color=app.color)
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
@_json_opt
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
    as_json: bool,
) -> int:
    """Make the runtime match the manifests and record what happened in qrt.lock."""
    from qrt_apply.api import Interrupted

    if as_json and not (auto_approve or planfile is not None):
        raise ConfigError("--json asks nothing: add --auto-approve (or apply a saved plan)")

    def show(plan: Plan) -> None:
        if not as_json:  # the JSON document carries the plan
            click.echo(render_plan(plan, color=app.color is not False), nl=False, color=app.color)

    def approve(plan: Plan) -> bool:
        if as_json:
            return True
        if not (auto_approve or planfile is not None):  # a saved plan was approved when saved
            if not sys.stdin.isatty():
                raise ConfigError("no terminal to ask for approval: run `qrt apply --auto-approve`")
            click.echo("")
            answer = click.prompt(
                "Do you want to perform these actions? Only 'yes' will be accepted",
                default="",
                show_default=False,
            )
            if answer.strip() != "yes":
                return False
        click.echo("")
        return True

    try:
        outcome = app.api().apply(
            planfile,
            approve=approve,
            on_plan=show,
            console=_console(app, as_json=as_json),
            wait=wait,
            targets=targets,
            replace=replace,
            prune=prune,
            parallelism=parallelism,
        )
    except Interrupted as exc:
        click.echo(
            "\nInterrupted. qrt.lock keeps everything done so far; run `qrt apply` again to "
            "continue (no completed job is rerun, no submitted job is submitted twice).",
            err=True,
        )
        if exc.jobs_stopped:
            click.echo(_STOPPED_JOBS, err=True)
        return 130
    code = 1 if outcome.outcome == "cancelled" or outcome.failed else 0
    if as_json:
        _echo_json(outcome.to_json())
        return code
    if outcome.outcome == "no-changes":
        return 0
    if outcome.outcome == "cancelled":
        click.echo("Apply cancelled.")
        return 1
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(outcome.done.items())) or "nothing"
    total = len(outcome.plan.actions)
    click.echo(
        f"\nApply complete: {done} ({total} action{'s' if total != 1 else ''}, "
        f"{len(outcome.failed)} failed) in {format_elapsed(outcome.elapsed)}."
    )
    for line in drift_summary(outcome.drift):
        click.echo(line)
    if outcome.pending:
        click.echo(f"{len(outcome.pending)} job(s) still running; `qrt refresh` collects them.")
    if outcome.failed:
        click.echo(
            f"{len(outcome.failed)} job(s) did not complete: {', '.join(outcome.failed)}", err=True
        )
        return 1
    return 0


@click.command()
@_parallelism_opt
@click.option(
    "--wait", is_flag=True, help="Block until every in-flight job is final (default: poll once)."
)
@_json_opt
@click.pass_obj
def refresh(app: Any, parallelism: int | None, wait: bool, as_json: bool) -> int:
    """Poll in-flight jobs once, collect the final ones into qrt.lock; submits nothing."""
    from qrt_apply.api import Interrupted

    try:
        outcome = app.api().refresh(
            wait=wait, console=_console(app, as_json=as_json), parallelism=parallelism
        )
    except Interrupted as exc:
        click.echo("\nInterrupted. qrt.lock keeps the results collected so far.", err=True)
        if exc.jobs_stopped:
            click.echo(_STOPPED_JOBS, err=True)
        return 130
    if as_json:
        _echo_json(outcome.to_json())
        return 1 if outcome.failed else 0
    if not outcome.in_flight:
        click.echo("Nothing in flight.")
        return 0
    click.echo(
        f"Collected {len(outcome.finished)} job(s) ({len(outcome.failed)} failed) "
        f"in {format_elapsed(outcome.elapsed)}."
    )
    for line in drift_summary(outcome.drift):
        click.echo(line)
    if outcome.running:
        click.echo(
            f"{len(outcome.running)} job(s) still running; `qrt refresh` again (or `qrt refresh --wait`) "
            "collects them."
        )
    return 1 if outcome.failed else 0


@click.command()
@click.option("--force", is_flag=True, help="Release it even if a live process holds it.")
@click.pass_obj
def unlock(app: Any, force: bool) -> int:
    """Release the apply lock left by an apply that is gone."""
    holder = app.api().unlock(force=force)
    if holder is None:
        click.echo("No apply lock to release.")
    else:
        who = f" held by pid {holder.get('pid')} on {holder.get('host')}" if holder else ""
        click.echo(f"Released the apply lock{who}.")
    return 0


COMMANDS = (validate, plan, apply, refresh, unlock)
