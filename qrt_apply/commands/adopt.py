"""qrt import: bring an object that already exists on the runtime under qrt's management.

Importing never changes the runtime. It records the object in qrt.lock as it is now; the next plan
then shows whatever it takes to make it match the manifests.
"""

from __future__ import annotations

import json
from typing import Any

import click

from qrt_apply.apply import Applier
from qrt_apply.errors import ConfigError, NotFoundError
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.model import DesiredState, JobSpec
from qrt_apply.plan.diff import observed_fields
from qrt_apply.plan.jobdiff import job_definition
from qrt_apply.render.console import TerminalConsole
from qrt_apply.runtime.base import JobInfo

__all__ = ["COMMANDS"]


@click.command(name="import")
@click.argument("address")
@click.argument("object_id")
@click.pass_obj
def import_(app: Any, address: str, object_id: str) -> int:
    """Adopt runtime object OBJECT_ID as ADDRESS (program.NAME or job.BATCH/JOB)."""
    project = app.project()
    desired = load_desired_state(project.root, project.manifests_dir)
    with ApplyLock(project.state_dir).hold():
        lock = Lockfile.load(project.lockfile, journal=project.state_dir / JOURNAL_NAME)
        try:
            _import(app, desired, lock, address, object_id)
        finally:
            lock.close()
    click.echo(f"Imported {object_id} as {address}. Run `qrt plan` to see what differs.")
    return 0


def _import(app: Any, desired: DesiredState, lock: Lockfile, address: str, object_id: str) -> None:
    runtime = app.open_runtime()
    lock.check_target(runtime.target)
    lock.set_target(runtime.target)
    if address.startswith("program."):
        name = address[len("program.") :]
        if name not in desired.programs:
            raise ConfigError(f"{address} is not a Program in the manifests")
        if (lock.program(address) or {}).get("id"):
            raise ConfigError(f"{address} is already in {lock.path.name}")
        try:
            info = runtime.program(object_id)
        except NotFoundError:
            raise ConfigError(f"no program {object_id} on the runtime") from None
        if info.data is None:
            raise ConfigError(f"program {object_id} is not yours: its source cannot be read")
        spec = desired.programs[name]
        if info.name != spec.name:
            raise ConfigError(
                f"refusing to import {object_id} as {address}: the runtime program is named "
                f"{info.name!r}, the manifests' Program is {spec.name!r}"
            )
        record = {"id": info.id, "name": info.name, "source": spec.source_path}
        record.update(observed_fields(info, {}))
        lock.set_program(address, record)
    elif address.startswith("job."):
        jobs = {job.address: job for job in desired.jobs()}
        if address not in jobs:
            raise ConfigError(f"{address} is not a job in the manifests")
        try:
            info = runtime.job(object_id)
        except NotFoundError:
            raise ConfigError(f"no job {object_id} on the runtime") from None
        job = jobs[address]
        _check_job(lock, job, info, object_id)
        lock.set_job(
            address,
            {
                "id": info.id,
                "batch": job.batch,
                "program": job.program.describe(),
                "digest": job.digest,
                "definition": lock.store_definition(job_definition(job)),
                "status": info.status,
                "backend": info.backend,
                "session_id": info.session_id,
                "created": info.created,
                "imported": True,
            },
        )
        if info.final:
            Applier(runtime, lock, desired, TerminalConsole()).collect(address, info)
    else:
        raise ConfigError("import takes program.NAME or job.BATCH/JOB")


def _comparable(params: Any) -> Any:
    """Params as JSON data in the runtime's encoding: what qrt sends and what a runtime reports
    (decoded or still encoded) compare equal when they are the same inputs."""
    from qrt_apply.runtime import encoding

    return json.loads(encoding.dumps(params))


def _check_job(lock: Lockfile, job: JobSpec, info: JobInfo, object_id: str) -> None:
    """Refuse a runtime job that is not the manifests' job: importing it would make the next plan
    say "No changes" and ``qrt results`` show another computation's values for this address."""
    if job.program.kind == "managed":
        record = lock.program(f"program.{job.program.value}") or {}
        if not record.get("id"):
            raise ConfigError(
                f"cannot check {object_id} against {job.address}: program.{job.program.value} "
                "is not in the lockfile yet; apply or import it first"
            )
        program_id = str(record["id"])
    else:
        program_id = job.program.value
    differs: list[str] = []
    if info.program_id != program_id:
        differs.append(f"program {info.program_id!r} (the manifests run {program_id!r})")
    if job.backend is not None and info.backend != job.backend:
        differs.append(f"backend {info.backend!r} (the manifests use {job.backend!r})")
    if info.params is None:
        differs.append("inputs (the runtime did not report them)")
    elif _comparable(dict(info.params)) != _comparable(job.params()):
        differs.append("inputs (they are not the resolved inputs of the manifests' job)")
    if differs:
        raise ConfigError(
            f"refusing to import {object_id} as {job.address}: it differs in "
            + "; ".join(differs)
            + ". Nothing was written."
        )


COMMANDS = (import_,)
