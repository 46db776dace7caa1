"""A plan: the ordered, frozen list of actions that would bring the runtime to the manifests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACTION_KINDS", "Action", "Change", "Plan"]

# In the order apply carries them out within a stage.
# Moves (lockfile only) come before everything else.
ACTION_KINDS = (
    "move",
    "create",
    "update",
    "set-visibility",
    "delete",
    "run",
    "rerun",
    "wait",
    "forget",
)


@dataclass(frozen=True)
class Change:
    field: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Action:
    kind: str
    address: str
    reason: str
    changes: tuple[Change, ...] = ()
    drift: bool = False
    # Extra facts apply needs: an id to adopt, what an update touches, a job's digest.
    details: tuple[tuple[str, Any], ...] = ()

    def detail(self, key: str, default: Any = None) -> Any:
        return dict(self.details).get(key, default)

    @property
    def stage(self) -> str:
        return "programs" if self.address.startswith("program.") else "jobs"

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "address": self.address,
            "reason": self.reason,
            "drift": self.drift,
            "changes": [c.to_json() for c in self.changes],
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    orphans: tuple[str, ...] = ()  # addresses in the lockfile, gone from the manifests, not pruned
    drift: tuple[str, ...] = ()  # addresses changed on the runtime behind qrt's back
    kept: tuple[str, ...] = ()  # programs gone from the manifests that --prune keeps (prune: false)
    refreshed: bool = True
    lock_digest: str = ""
    target: dict[str, Any] = field(default_factory=dict)
    environment: str | None = None  # the qrt.yaml environment it was made for, if any

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.kind] = counts.get(action.kind, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "actions": [a.to_json() for a in self.actions],
            "orphans": list(self.orphans),
            "drift": list(self.drift),
            "kept": list(self.kept),
            "refreshed": self.refreshed,
            "lock_digest": self.lock_digest,
            "target": self.target,
            "environment": self.environment,
            "summary": self.counts(),
            "has_changes": self.has_changes,
        }
