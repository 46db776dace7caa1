"""Saved plans (``qrt plan --out FILE``): applied exactly, refused once stale.

A plan file records the lockfile digest, a digest of the desired state and the target it was made
against. ``qrt apply FILE`` refuses it when any of the three no longer matches, as Terraform refuses a
stale saved plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qrt_apply.errors import PlanError
from qrt_apply.fileio import atomic_write
from qrt_apply.model import DesiredState, canonical_json, sha256_hex
from qrt_apply.plan.model import Action, Change, Plan

__all__ = ["desired_digest", "load_plan_file", "plan_from_json", "save_plan_file"]

KIND = "qrt-plan"


def desired_digest(desired: DesiredState) -> str:
    state: dict[str, Any] = {
        "programs": {
            name: [p.content_digest, p.metadata_digest, p.visibility]
            for name, p in desired.programs.items()
        },
        "jobs": {job.address: job.digest for job in desired.jobs()},
    }
    if desired.moves or any(not p.prune for p in desired.programs.values()):
        state["moves"] = [[m.source, m.dest] for m in desired.moves]
        state["kept"] = sorted(n for n, p in desired.programs.items() if not p.prune)
    return sha256_hex(canonical_json(state))


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def plan_from_json(data: dict[str, Any]) -> Plan:
    actions = tuple(
        Action(
            kind=item["action"],
            address=item["address"],
            reason=item["reason"],
            changes=tuple(Change(c["field"], c["old"], c["new"]) for c in item.get("changes", [])),
            drift=bool(item.get("drift", False)),
            details=tuple((k, _freeze(v)) for k, v in sorted(item.get("details", {}).items())),
        )
        for item in data["actions"]
    )
    return Plan(
        actions=actions,
        orphans=tuple(data.get("orphans", ())),
        drift=tuple(data.get("drift", ())),
        kept=tuple(data.get("kept", ())),
        refreshed=bool(data.get("refreshed", True)),
        lock_digest=data.get("lock_digest", ""),
        target=dict(data.get("target") or {}),
        environment=data.get("environment"),
    )


def save_plan_file(path: Path, plan: Plan, desired: str) -> None:
    body = {"kind": KIND, "plan": plan.to_json(), "desired_digest": desired}
    atomic_write(path, json.dumps(body, sort_keys=True, indent=2) + "\n")


def load_plan_file(path: Path, *, lock_digest: str, desired: str, target: dict[str, Any]) -> Plan:
    try:
        body = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(body, dict) or body.get("kind") != KIND:
        raise PlanError(f"{path}: not a qrt plan file")
    plan = plan_from_json(body["plan"])
    if plan.target != target:
        raise PlanError(f"{path}: the plan was made for another target")
    if plan.lock_digest != lock_digest:
        raise PlanError(
            f"{path}: stale plan — qrt.lock changed since it was made; run `qrt plan` again"
        )
    if body.get("desired_digest") != desired:
        raise PlanError(
            f"{path}: stale plan — the manifests changed since it was made; run `qrt plan` again"
        )
    return plan
