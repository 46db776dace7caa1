"""show and results: read what qrt.lock records, without touching the runtime (thin shells over
``Project.show`` and ``Project.results``/``sweep``/``compare``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError
from qrt_apply.failures import failure_reason

__all__ = ["COMMANDS"]


def _job_line(address: str, record: dict[str, Any]) -> str:
    line = f"{address:<40} {record.get('id') or '-':<28} {record.get('status', '')}"
    reason = record.get("reason")
    if reason:
        line += f" ({reason})"
    if record.get("status") == "FAILED" and record.get("error"):
        why = failure_reason(record["error"])
        if why and why != reason:
            line += f" — {why}"
    return line


@click.command()
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the record(s) as JSON.")
@click.pass_obj
def show(app: Any, address: str | None, as_json: bool) -> int:
    """What qrt.lock records: every address, one in full, or the jobs of batch.NAME."""
    api = app.api()
    found = api.show(address)
    programs, jobs = found["programs"], found["jobs"]
    if address is not None and not address.startswith("batch."):
        record = programs[address] if address in programs else jobs[address]
        if as_json:
            click.echo(json.dumps(record, sort_keys=True, indent=2))
            return 0
        for key in sorted(record):
            if key not in _NOT_SHOWN:
                click.echo(f"{key:>20}: {record[key]}")
        if record.get("history"):
            click.echo(f"{'history':>20}: {len(record['history'])} earlier run(s)")
        return 0
    if as_json:  # batch.NAME: its jobs by address; everything: programs and jobs
        data = jobs if address is not None else found
        click.echo(json.dumps(data, sort_keys=True, indent=2))
        return 0
    if not programs and not jobs:
        click.echo(f"{api.settings.lockfile.name} records nothing yet.")
        return 0
    for addr, rec in sorted(programs.items()):
        click.echo(f"{addr:<40} {rec.get('id', '-'):<28} {rec.get('visibility', '')}")
    for addr, rec in sorted(jobs.items()):
        click.echo(_job_line(addr, rec))
    return 0


# Record fields too long for the one-record view (--json shows them).
_NOT_SHOWN = frozenset(
    {"result", "interim_results", "history", "spec", "inputs_digest_parts", "definition"}
)


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
    from qrt_apply.results.summary import summarize

    if not address.startswith(("job.", "batch.")):
        raise ConfigError(f"{address}: qrt results takes job.BATCH/JOB or batch.NAME")
    api = app.api()
    if compare:
        comparisons = api.compare(address)
        for item in comparisons.jobs:
            if item.drift is None:
                click.echo(f"{item.address}: no earlier completed run to compare with")
                continue
            click.echo(f"{item.address}: against {item.previous_id}")
            for line in view.render_drift(item.address, item.drift, comparisons.tolerance):
                click.echo(line)
        if comparisons.past:
            click.echo(f"{len(comparisons.past)} job(s) drifted past the tolerance.", err=True)
            return 1
        return 0
    if address.startswith("batch."):
        sweep = api.sweep(address)
        if plot is not None:
            from qrt_apply.results.plot import plot_sweep

            plot_sweep(sweep, plot, address)
        if as_json:
            prefix = "job." + address[len("batch.") :]
            data = {f"{prefix}/{n}": api.results(f"{prefix}/{n}").result for n in sweep.matrices}
            click.echo(json.dumps(data, sort_keys=True, indent=2))
            return 0
        against = f" against {sweep.variable}" if sweep.variable else ""
        click.echo(f"{address}: {len(sweep.matrices)} completed job(s){against}")
        for line in view.render_sweep(sweep):
            click.echo(line)
    else:
        found = api.results(address)
        summary = summarize(found.result)
        if plot is not None:
            from qrt_apply.results.plot import plot_summary

            plot_summary(summary, plot, address)
        if as_json:
            interim = found.record.get("interim_results")
            payload = {"result": found.result, "interim_results": interim}
            click.echo(json.dumps(payload, sort_keys=True, indent=2))
            return 0
        record = found.record
        click.echo(
            f"{address}  {record.get('id')}  {record.get('status')}  on {record.get('backend')}"
        )
        for line in view.render_summary(summary, found.result):
            click.echo(line)
        if found.interim_results:
            click.echo(f"interim results ({len(found.interim_results)}):")
            for item in found.interim_results:
                click.echo("  " + json.dumps(item, sort_keys=True))
    if plot is not None:
        click.echo(f"Wrote {plot}.")
    return 0


COMMANDS = (show, results)
