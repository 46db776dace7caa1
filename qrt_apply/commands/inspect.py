"""show and results: read what qrt.lock records, without touching the runtime."""

from __future__ import annotations

import json
from typing import Any

import click

from qrt_apply.errors import ConfigError
from qrt_apply.failures import failure_reason
from qrt_apply.lockfile import JOURNAL_NAME, Lockfile

__all__ = ["COMMANDS", "batch_jobs"]


def _lock(app: Any) -> Lockfile:
    project = app.project()
    # A journal left by an apply that died is replayed first (see Lockfile.load).
    return Lockfile.load(project.lockfile, journal=project.state_dir / JOURNAL_NAME)


def batch_jobs(jobs: dict[str, dict[str, Any]], address: str) -> dict[str, dict[str, Any]]:
    """The job records of ``batch.NAME`` (address -> record), in address order."""
    name = address[len("batch.") :]
    prefix = f"job.{name}/"
    return {a: rec for a, rec in sorted(jobs.items()) if a.startswith(prefix)}


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
    lock = _lock(app)
    programs, jobs = lock.programs(), lock.jobs()
    if address is not None and address.startswith("batch."):
        found = batch_jobs(jobs, address)
        if not found:
            raise ConfigError(f"{address} has no jobs in {lock.path.name}")
        if as_json:
            click.echo(json.dumps(found, sort_keys=True, indent=2))
            return 0
        for addr, rec in found.items():
            click.echo(_job_line(addr, rec))
        return 0
    if address is not None:
        record = programs.get(address) or jobs.get(address)
        if record is None:
            raise ConfigError(f"{address} is not in {lock.path.name}")
        if as_json:
            click.echo(json.dumps(record, sort_keys=True, indent=2))
        else:
            for key in sorted(record):
                if key in ("result", "interim_results", "history", "spec", "inputs_digest_parts"):
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
        click.echo(_job_line(addr, rec))
    return 0


@click.command()
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def results(app: Any, address: str, as_json: bool) -> int:
    """The recorded result (and interim results) of a job."""
    lock = _lock(app)
    record = lock.job(address)
    if record is None:
        raise ConfigError(f"{address} is not a job in {lock.path.name}")
    if record.get("status") != "COMPLETED":
        raise ConfigError(
            f"{address} has no result: status {record.get('status')}"
            + (f"\n{record['error']}" if record.get("error") else "")
        )
    result = lock.load_result(record)
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
    click.echo(json.dumps(result, sort_keys=True, indent=2))
    if record.get("interim_results"):
        click.echo(f"interim results ({len(record['interim_results'])}):")
        for item in record["interim_results"]:
            click.echo("  " + json.dumps(item, sort_keys=True))
    return 0


COMMANDS = (show, results)
