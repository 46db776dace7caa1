"""The pure diff: desired state × lockfile × observed runtime → ``Plan``.

No I/O happens here. When ``observed`` is None (``--no-refresh`` / ``--lock-only``) the lockfile is
taken as the truth about the runtime. Otherwise the runtime is the truth: what differs from the
lockfile is reported as drift, and the actions repair it like any other change.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from qrt_apply.errors import ManifestError, PlanError
from qrt_apply.model import DesiredState, JobSpec, ProgramSpec, content_digest, metadata_digest
from qrt_apply.moves import apply_steps, planned_renames, rename_steps
from qrt_apply.plan.jobdiff import definition_changes, definition_parts, job_definition
from qrt_apply.plan.model import Action, Change, Plan
from qrt_apply.plan.refresh import Observed
from qrt_apply.runtime.base import ProgramInfo

__all__ = [
    "job_digest_parts",
    "make_plan",
    "observed_fields",
    "select_addresses",
    "spec_changes",
]


def observed_fields(info: ProgramInfo, recorded: Mapping[str, Any]) -> dict[str, Any]:
    """What the runtime holds for a program, in the lockfile's terms (the source only if readable)."""
    return {
        "content_digest": content_digest(info.data)
        if info.data is not None
        else recorded.get("content_digest"),
        "metadata_digest": metadata_digest(
            info.description, info.max_execution_time, dict(info.spec or {})
        ),
        "description": info.description,
        "max_execution_time": info.max_execution_time,
        "spec": dict(info.spec or {}),
        "visibility": "public" if info.is_public else "private",
    }


_TOUCHED = {"data": "source", "metadata": "metadata", "name": "name"}


def _program_actions(
    spec: ProgramSpec,
    recorded: Mapping[str, Any] | None,
    observed: Observed | None,
    *,
    replace: bool,
) -> tuple[list[Action], bool]:
    """Actions for one program, and whether drift was seen."""
    address = spec.address
    if recorded is None or not recorded.get("id"):
        existing = observed.names.get(spec.name) if observed is not None else None
        if existing is not None:
            if recorded is not None and recorded.get("pending") == "create":
                return [
                    Action(
                        "create",
                        address,
                        f"adopt {existing}, uploaded by an interrupted apply",
                        details=(("adopt_id", existing),),
                    )
                ], False
            raise PlanError(
                f"{address}: a program named {spec.name!r} already exists on the runtime "
                f"(id {existing}) but not in the lockfile; run `qrt import {address} {existing}` "
                "to manage it, or rename the Program"
            )
        return [Action("create", address, "not on the runtime")], False

    current: dict[str, Any] = dict(recorded)
    drift = False
    if observed is not None:
        info = observed.programs.get(recorded["id"])
        if info is None:
            return [
                Action("create", address, f"{recorded['id']} was deleted outside qrt", drift=True)
            ], True
        seen = observed_fields(info, recorded)
        drift = any(
            seen[key] != recorded.get(key)
            for key in ("content_digest", "metadata_digest", "visibility")
        )
        current.update(seen)
        current["name"] = info.name

    actions: list[Action] = []
    changes: list[Change] = []
    touches: list[str] = []
    if replace or current.get("content_digest") != spec.content_digest:
        touches.append("data")
        changes.append(Change("source", current.get("content_digest"), spec.content_digest))
    if replace or current.get("metadata_digest") != spec.metadata_digest:
        touches.append("metadata")
        for key, new in (
            ("description", spec.description),
            ("max_execution_time", spec.max_execution_time),
        ):
            if replace or current.get(key) != new:
                changes.append(Change(key, current.get(key), new))
        if current.get("spec") != dict(spec.spec):
            changes.extend(spec_changes(current.get("spec") or {}, dict(spec.spec)))
    if current.get("name") and current["name"] != spec.name:
        # moved (qrt mv, a Moved manifest): the runtime program keeps its id, takes the new name
        touches.append("name")
        changes.append(Change("name", current["name"], spec.name))
    if recorded.get("prune", True) != spec.prune:
        changes.append(Change("prune", recorded.get("prune", True), spec.prune))
        if not touches:
            actions.append(
                Action(
                    "update",
                    address,
                    f"prune: {str(spec.prune).lower()} to record in the lockfile (nothing sent)",
                    tuple(changes),
                    details=(("touches", ()),),
                )
            )
    if touches:
        what = " and ".join(_TOUCHED[t] for t in touches)
        reason = "replacement requested" if replace else f"{what} changed"
        actions.append(
            Action(
                "update",
                address,
                reason + (" on the runtime" if drift else ""),
                tuple(changes),
                drift=drift,
                details=(("touches", tuple(touches)),),
            )
        )
    if current.get("visibility") != spec.visibility:
        actions.append(
            Action(
                "set-visibility",
                address,
                f"{current.get('visibility')} → {spec.visibility}",
                (Change("visibility", current.get("visibility"), spec.visibility),),
                drift=drift,
            )
        )
    return actions, drift


def _job_action(
    job: JobSpec,
    recorded: Mapping[str, Any] | None,
    observed: Observed | None,
    *,
    replace: bool,
) -> Action | None:
    address = job.address
    digest = job.digest
    details: tuple[tuple[str, Any], ...] = (("digest", digest),)
    if recorded is None:
        return Action("run", address, "new job", details=details)
    if recorded.get("digest") != digest:
        reason, changes = _why_changed(job, recorded)
        return Action("rerun", address, reason, changes, details=details)
    if replace:
        return Action("rerun", address, "replacement requested", details=details)
    status = recorded.get("status")
    if status == "COMPLETED":
        return None
    if status in ("FAILED", "CANCELLED"):
        why = recorded.get("reason")
        return Action(
            "rerun",
            address,
            f"last run {status}" + (f" ({why})" if why else ""),
            details=details,
        )
    if status == "SUBMITTING":
        tag = recorded.get("submission_tag")
        found = observed.tagged.get(tag) if observed is not None and tag else None
        if found is not None:
            return Action(
                "wait",
                address,
                f"adopt {found.id}, submitted by an interrupted apply",
                details=(*details, ("adopt_id", found.id)),
            )
        if observed is None:
            return Action(
                "run", address, "submission was interrupted; checked at apply", details=details
            )
        return Action("run", address, "interrupted before the runtime accepted it", details=details)
    # QUEUED or RUNNING
    if observed is not None and recorded.get("id") in observed.jobs:
        info = observed.jobs[recorded["id"]]
        if info is None:
            return Action(
                "rerun", address, f"{recorded['id']} is gone from the runtime", details=details
            )
        return Action("wait", address, f"{info.status.lower()} on the runtime", details=details)
    return Action("wait", address, f"{str(status).lower()} when last seen", details=details)


def _why_changed(job: JobSpec, recorded: Mapping[str, Any]) -> tuple[str, tuple[Change, ...]]:
    """Which parts of a job changed, and (when the record keeps its definition) each field's old
    and new value. A record from before definitions were kept names the parts only."""
    definition = recorded.get("definition")
    if isinstance(definition, Mapping):
        definition = {**definition, "program": recorded.get("program")}
        new = {**job_definition(job), "program": job.program.describe()}
        old_parts, parts = definition_parts(definition), definition_parts(new)
        changes = tuple(definition_changes(definition, new))
    else:
        old_parts = recorded.get("inputs_digest_parts") or {}
        parts = job_digest_parts(job) if old_parts else {}
        changes = ()
    if not old_parts:
        return "job definition changed", changes
    changed = [key for key in sorted(parts) if parts[key] != old_parts.get(key)]
    return (", ".join(changed) + " changed") if changed else "job definition changed", changes


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """One change per nested path of a program spec (``spec.parameters.properties.x.maximum``),
    so a reviewer sees what moved rather than two large objects. Absent values are None."""
    from deepdiff import DeepDiff
    from deepdiff.helper import notpresent

    changes = []
    for items in DeepDiff(dict(old), dict(new), view="tree").values():
        for item in items:
            field = ".".join(["spec", *(str(p) for p in item.path(output_format="list"))])
            before = None if item.t1 is notpresent else item.t1
            after = None if item.t2 is notpresent else item.t2
            changes.append(Change(field, before, after))
    return sorted(changes, key=lambda c: c.field)


def job_digest_parts(job: JobSpec) -> dict[str, str]:
    """Per-part digests, recorded so a plan can say *what* changed about a job."""
    from qrt_apply.model import canonical_json, sha256_hex

    program = job.program_digest if job.program.kind == "managed" else job.program.value
    return {
        "program": sha256_hex(program),
        "backend": sha256_hex(str(job.backend)),
        "inputs": sha256_hex(canonical_json(job.inputs)),
        "files": sha256_hex(canonical_json(dict(job.files))),
        "options": sha256_hex(canonical_json(job.options)),
        "session": sha256_hex(str(job.session_key)),
    }


def select_addresses(desired: DesiredState, targets: Collection[str]) -> set[str]:
    """Expand ``--target`` addresses (program., batch., job.) and add the programs jobs need."""
    selected: set[str] = set()
    for address in targets:
        if address.startswith("batch."):
            batch = desired.batches.get(address[len("batch.") :])
            if batch is None:
                raise PlanError(f"--target {address}: no such batch in the manifests")
            selected.update(job.address for job in batch.jobs)
        else:
            selected.add(address)
    for job in desired.jobs():
        if job.address in selected and job.program.kind == "managed":
            selected.add(f"program.{job.program.value}")
    return selected


def make_plan(
    desired: DesiredState,
    lock: Mapping[str, Any],
    observed: Observed | None,
    *,
    prune: bool = False,
    targets: Collection[str] = (),
    replace: Collection[str] = (),
    lock_digest: str = "",
    target: Mapping[str, Any] | None = None,
    environment: str | None = None,
) -> Plan:
    moves: list[Action] = []
    if desired.moves:
        renames = planned_renames(lock, desired.moves)
        lock = apply_steps(lock, rename_steps(lock, renames))
        moves = [
            Action("move", new, f"moved from {old}", details=(("from", old),))
            for _, old, new in renames
        ]
    recorded_programs: Mapping[str, Any] = lock.get("programs", {})
    recorded_jobs: Mapping[str, Any] = lock.get("jobs", {})
    selected = select_addresses(desired, targets) if targets else None

    if observed is not None and observed.backends is not None:
        for job in desired.jobs():
            if job.backend is not None and job.backend not in observed.backends:
                raise ManifestError(
                    f"batch {job.batch!r}: backend {job.backend!r} is not offered by the runtime "
                    f"(it has: {', '.join(observed.backends)})",
                    job.manifest,
                    job.line,
                )
        if observed.backend_info:
            # Widths and limits of the backends, now that the runtime has described them.
            from qrt_apply.manifests.pubs import check_backends

            check_backends(desired.jobs(), observed.backend_info)

    actions: list[Action] = []
    drift: list[str] = []
    for spec in desired.programs.values():
        found, drifted = _program_actions(
            spec, recorded_programs.get(spec.address), observed, replace=spec.address in replace
        )
        actions.extend(found)
        if drifted:
            drift.append(spec.address)
    wanted_programs = {spec.address for spec in desired.programs.values()}
    orphans: list[str] = []
    kept: list[str] = []
    for address, record in sorted(recorded_programs.items()):
        if address in wanted_programs:
            continue
        if prune and record.get("prune") is False:
            kept.append(address)
        elif prune and record.get("id"):
            actions.append(Action("delete", address, "removed from the manifests (--prune)"))
        elif prune:
            actions.append(Action("forget", address, "never reached the runtime"))
        else:
            orphans.append(address)

    for job in desired.jobs():
        action = _job_action(
            job, recorded_jobs.get(job.address), observed, replace=job.address in replace
        )
        if action is not None:
            actions.append(action)
    wanted_jobs = {job.address for job in desired.jobs()}
    for address in sorted(recorded_jobs):
        if address in wanted_jobs:
            continue
        if prune:
            actions.append(
                Action(
                    "forget",
                    address,
                    "removed from the manifests (--prune); the runtime keeps the job",
                )
            )
        else:
            orphans.append(address)

    if selected is not None:
        actions = [a for a in actions if a.address in selected]
    return Plan(
        actions=tuple(moves + actions),  # moves always: the other actions are planned after them
        orphans=tuple(orphans),
        drift=tuple(drift),
        kept=tuple(kept),
        refreshed=observed is not None,
        lock_digest=lock_digest,
        target=dict(target or {}),
        environment=environment,
    )
