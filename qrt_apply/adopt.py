"""Import: bring an object that already exists on the runtime under qrt's management
(``Project.import_``, ``qrt import``).

Importing never changes the runtime. It records the object in qrt.lock as it is now; the next plan
then shows whatever it takes to make it match the manifests. A job is checked against the
manifests' job first (program, backend, inputs): another computation is refused.
"""

from __future__ import annotations

import json
from typing import Any

from qrt_apply.apply import Applier
from qrt_apply.errors import ConfigError, NotFoundError
from qrt_apply.lockfile import Lockfile
from qrt_apply.model import DesiredState, JobSpec
from qrt_apply.plan.diff import observed_fields
from qrt_apply.plan.jobdiff import job_definition
from qrt_apply.render.console import Console
from qrt_apply.runtime.base import JobInfo, Runtime

__all__ = ["adopt"]


def adopt(
    runtime: Runtime,
    lock: Lockfile,
    desired: DesiredState,
    address: str,
    object_id: str,
    console: Console,
) -> dict[str, Any]:
    """Record runtime object ``object_id`` at ``address`` (``program.NAME`` or ``job.BATCH/JOB``)
    in ``lock``; a finished job's result is collected too. Returns the record as written."""
    lock.check_target(runtime.target)
    lock.set_target(runtime.target)
    if address.startswith("program."):
        return _program(runtime, lock, desired, address, object_id)
    if address.startswith("job."):
        return _job(runtime, lock, desired, address, object_id, console)
    raise ConfigError("import takes program.NAME or job.BATCH/JOB")


def _program(
    runtime: Runtime, lock: Lockfile, desired: DesiredState, address: str, object_id: str
) -> dict[str, Any]:
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
    return lock.program(address) or record


def _job(
    runtime: Runtime,
    lock: Lockfile,
    desired: DesiredState,
    address: str,
    object_id: str,
    console: Console,
) -> dict[str, Any]:
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
        Applier(runtime, lock, desired, console).collect(address, info)
    return lock.jobs()[address]


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
