"""How :class:`~qrt_apply.api.Project` arrives at the plan it plans or applies: the addresses
checked, Program documents refused on IBM Quantum Platform, the runtime observed (or qrt.lock
standing for it), and a plan passed to ``apply`` checked against qrt.lock, the manifests and the
target it was made for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qrt_apply.errors import ConfigError, ManifestError, PlanError
from qrt_apply.lockfile import Lockfile
from qrt_apply.model import DesiredState
from qrt_apply.plan import Plan, make_plan, observe
from qrt_apply.plan.saved import desired_digest, load_plan_file

if TYPE_CHECKING:
    from qrt_apply.api import PathLike, Project

__all__ = ["check_addresses", "make_project_plan", "plan_to_apply", "refuse_programs"]


def check_addresses(desired: DesiredState, lock: Lockfile, addresses: Sequence[str]) -> None:
    known = lock.addresses()
    known |= {f"program.{name}" for name in desired.programs}
    known |= {f"batch.{name}" for name in desired.batches}
    known |= {job.address for job in desired.jobs()}
    for address in addresses:
        if address not in known:
            raise ConfigError(f"unknown address {address!r} (see `qrt show` for what exists)")


def refuse_programs(desired: DesiredState, channel: str, targets: Sequence[str]) -> None:
    """On IBM Quantum Platform, the Program documents (and batches running them, or naming no
    backend) among the planned addresses are an error naming the first one's file and line;
    nothing has been sent yet."""
    from qrt_apply.plan.diff import select_addresses
    from qrt_apply.runtime.accounts import PLATFORM_CHANNELS

    if channel not in PLATFORM_CHANNELS:
        return
    selected = select_addresses(desired, targets) if targets else None
    why = (
        f"IBM Quantum Platform (channel {channel}) has no program upload; it runs job batches of "
        "the built-in sampler and estimator only. Leave this document out (`qrt plan --target "
        "batch.NAME` for the built-in batches) or apply it to the embedded runtime or `qrt serve`"
    )
    for program in desired.programs.values():
        if selected is None or program.address in selected:
            raise ManifestError(f"Program {program.name!r}: {why}", program.manifest, program.line)
    for batch in desired.batches.values():
        if selected is not None and not any(job.address in selected for job in batch.jobs):
            continue
        if batch.program.kind != "builtin":
            raise ManifestError(
                f"JobBatch {batch.name!r} runs {batch.program.describe()}: {why}",
                batch.manifest,
                batch.line,
            )
        if not batch.backend:
            raise ManifestError(
                f"JobBatch {batch.name!r} needs a backend: on IBM Quantum Platform every job "
                "names the device it runs on",
                batch.manifest,
                batch.line,
            )


def plan_to_apply(
    project: Project,
    plan: Plan | PathLike | None,
    desired: DesiredState,
    lock: Lockfile,
    targets: Sequence[str],
    replace: Sequence[str],
    prune: bool,
    workers: int,
) -> Plan:
    """The plan :meth:`Project.apply` carries out: made now, or ``plan`` once it is not stale."""
    if plan is None:
        return make_project_plan(
            project,
            desired,
            lock,
            refresh=True,
            prune=prune,
            targets=tuple(targets),
            replace=tuple(replace),
            parallelism=workers,
        )
    runtime = project.open_runtime()
    lock.check_target(runtime.target)
    target = runtime.target.to_json()
    if not isinstance(plan, Plan):
        return load_plan_file(
            Path(plan),
            lock_digest=lock.digest(),
            desired=desired_digest(desired),
            target=target,
        )
    if plan.target != target:
        raise PlanError("the plan was made for another target")
    if plan.lock_digest != lock.digest():
        raise PlanError("stale plan — qrt.lock changed since it was made; plan again")
    if project._digest_of(plan) != desired_digest(desired):
        raise PlanError("stale plan — the manifests changed since it was made; plan again")
    return plan


def make_project_plan(
    project: Project,
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
    """The plan against the project's runtime; with ``lock_only`` no runtime is opened at all
    and the lockfile stands for the runtime."""
    check_addresses(desired, lock, targets + replace)
    observed = None
    if lock_only:
        target = lock.target or {}
    else:
        runtime = project.open_runtime()
        lock.check_target(runtime.target)
        target = runtime.target.to_json()
    refuse_programs(desired, str(target.get("channel") or ""), targets)
    if not lock_only and refresh:
        observed = observe(
            runtime,
            lock.view(),
            names=desired.programs,
            backends={job.backend for job in desired.jobs() if job.backend},
            parallelism=parallelism,
        )
    return make_plan(
        desired,
        lock.view(),
        observed,
        prune=prune,
        targets=targets,
        replace=replace,
        lock_digest=lock.digest(),
        target=target,
        environment=project.settings.environment,
    )
