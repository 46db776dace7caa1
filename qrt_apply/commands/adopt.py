"""qrt import: bring an object that already exists on the runtime under qrt's management.

Importing never changes the runtime. It records the object in qrt.lock as it is now; the next plan
then shows whatever it takes to make it match the manifests.
"""

from __future__ import annotations

from typing import Any

import click

from qrt_apply.apply import Applier
from qrt_apply.errors import ConfigError, NotFoundError
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.model import DesiredState
from qrt_apply.plan.diff import job_digest_parts, observed_fields
from qrt_apply.render.console import TerminalConsole

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
        lock.set_job(
            address,
            {
                "id": info.id,
                "batch": job.batch,
                "program": job.program.describe(),
                "digest": job.digest,
                "inputs_digest_parts": job_digest_parts(job),
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


COMMANDS = (import_,)
