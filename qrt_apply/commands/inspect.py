"""show and results: read what qrt.lock records, without touching the runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError
from qrt_apply.lockfile import JOURNAL_NAME, Lockfile

__all__ = ["COMMANDS"]


def _lock(app: Any) -> Lockfile:
    project = app.project()
    # A journal left by an apply that died is replayed first (see Lockfile.load).
    return Lockfile.load(project.lockfile, journal=project.state_dir / JOURNAL_NAME)


@click.command()
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the record(s) as JSON.")
@click.pass_obj
def show(app: Any, address: str | None, as_json: bool) -> int:
    """What qrt.lock records: every address, or one in full."""
    lock = _lock(app)
    programs, jobs = lock.programs(), lock.jobs()
    if address is not None:
        record = programs.get(address) or jobs.get(address)
        if record is None:
            raise ConfigError(f"{address} is not in {lock.path.name}")
        if as_json:
            click.echo(json.dumps(record, sort_keys=True, indent=2))
        else:
            for key in sorted(record):
                if key in (
                    "result",
                    "interim_results",
                    "history",
                    "spec",
                    "inputs_digest_parts",
                    "definition",
                ):
                    continue
                click.echo(f"{key:>20}: {record[key]}")
            if record.get("history"):
                click.echo(f"{'history':>20}: {len(record['history'])} earlier run(s)")
        return 0
    if as_json:
        click.echo(json.dumps({"programs": programs, "jobs": jobs}, sort_keys=True, indent=2))
        return 0
    if not programs and not jobs:
        click.echo(f"{lock.path.name} records nothing yet.")
        return 0
    for addr, rec in sorted(programs.items()):
        click.echo(f"{addr:<40} {rec.get('id', '-'):<28} {rec.get('visibility', '')}")
    for addr, rec in sorted(jobs.items()):
        click.echo(f"{addr:<40} {rec.get('id') or '-':<28} {rec.get('status', '')}")
    return 0


@click.command()
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.png|FILE.svg",
    help="Draw a histogram of counts, expectation-value bars, or for batch.NAME a sweep plot.",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Drift from the previous completed run; exit 1 past the batch's result_tolerance.",
)
@click.pass_obj
def results(app: Any, address: str, as_json: bool, plot: Path | None, compare: bool) -> int:
    """A job's recorded result as a table (or a batch's sweep), its plot, its drift."""
    from qrt_apply.render import results_view as view
    from qrt_apply.results import report
    from qrt_apply.results.summary import summarize

    if not (address.startswith("job.") or address.startswith("batch.")):
        raise ConfigError(f"{address}: qrt results takes job.BATCH/JOB or batch.NAME")
    lock = _lock(app)
    if compare:
        return _compare(app, lock, address)
    if address.startswith("batch."):
        sweep, matrices = report.batch_sweep(lock, address)
        if plot is not None:
            from qrt_apply.results.plot import plot_sweep

            plot_sweep(sweep, plot, address)
        if as_json:
            records = report.batch_jobs(lock, address)
            data = {
                a: report.completed_result(lock, a)[1]
                for a, r in records.items()
                if r.get("status") == "COMPLETED"
            }
            click.echo(json.dumps(data, sort_keys=True, indent=2))
        else:
            variable = f" against {sweep.variable}" if sweep.variable else ""
            click.echo(f"{address}: {len(matrices)} completed job(s){variable}")
            for line in view.render_sweep(sweep, matrices):
                click.echo(line)
        if plot is not None and not as_json:
            click.echo(f"Wrote {plot}.")
        return 0
    record, result = report.completed_result(lock, address)
    summary = summarize(result)
    if plot is not None:
        from qrt_apply.results.plot import plot_summary

        plot_summary(summary, plot, address)
    if as_json:
        click.echo(
            json.dumps(
                {"result": result, "interim_results": record.get("interim_results")},
                sort_keys=True,
                indent=2,
            )
        )
        return 0
    click.echo(f"{address}  {record.get('id')}  {record.get('status')}  on {record.get('backend')}")
    for line in view.render_summary(summary, result):
        click.echo(line)
    if record.get("interim_results"):
        click.echo(f"interim results ({len(record['interim_results'])}):")
        for item in record["interim_results"]:
            click.echo("  " + json.dumps(item, sort_keys=True))
    if plot is not None:
        click.echo(f"Wrote {plot}.")
    return 0


def _compare(app: Any, lock: Lockfile, address: str) -> int:
    """``results --compare``: each job's drift from its previous completed run, against the
    tolerance its batch sets in the manifests; 1 when any job is past it."""
    from qrt_apply.manifests import load_desired_state
    from qrt_apply.render import results_view as view
    from qrt_apply.results import report

    project = app.project()
    desired = load_desired_state(project.root, project.manifests_dir)
    tolerance = report.tolerance_for(desired, address)
    if address.startswith("batch."):
        addresses = [
            a for a, r in report.batch_jobs(lock, address).items() if r.get("status") == "COMPLETED"
        ]
    else:
        addresses = [address]
    past = 0
    for job in addresses:
        comparison = report.compare_job(lock, job)
        if comparison.drift is None:
            click.echo(f"{job}: no earlier completed run to compare with")
            continue
        click.echo(f"{job}: against {comparison.previous_id}")
        for line in view.render_drift(job, comparison.drift, tolerance):
            click.echo(line)
        if comparison.drift.exceeds(tolerance):
            past += 1
    if past:
        click.echo(f"{past} job(s) drifted past the tolerance.", err=True)
        return 1
    return 0


COMMANDS = (show, results)
