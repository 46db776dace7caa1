"""The values :class:`~qrt_apply.api.Project` returns and raises: what a validate, apply, refresh
or results call found, each with the ``to_json`` the ``--json`` output prints, and
:class:`Interrupted` for Ctrl-C during an apply or refresh. Re-exported by :mod:`qrt_apply.api`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qrt_apply.plan import Plan

__all__ = ["ApplyResult", "Interrupted", "JobResult", "RefreshResult", "Validation"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :meth:`Project.apply` or :meth:`Project.refresh`, raised once ``qrt.lock``
    keeps everything done so far (no completed job is rerun, none submitted twice by the next apply).
    ``jobs_stopped``: the embedded runtime was running jobs in this process; they were stopped and
    queued again, and the next apply or refresh runs them."""

    def __init__(self, *, jobs_stopped: bool) -> None:
        super().__init__("interrupted")
        self.jobs_stopped = jobs_stopped


@dataclass(frozen=True)
class Validation:
    """What the manifests hold once they passed every offline check."""

    programs: int
    batches: int
    jobs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": True,
            "programs": self.programs,
            "batches": self.batches,
            "jobs": self.jobs,
        }


@dataclass(frozen=True)
class ApplyResult:
    """How an apply ended. ``outcome``: ``applied``, ``no-changes`` (nothing to do) or ``cancelled``
    (the approval callback said no; nothing was changed)."""

    plan: Plan
    outcome: str
    done: Mapping[str, int] = field(
        default_factory=dict
    )  # action kind -> how many were carried out
    finished: Mapping[str, str] = field(default_factory=dict)  # job address -> final status
    pending: tuple[str, ...] = ()  # submitted and not waited for (``wait=False``)
    elapsed: float = 0.0  # seconds from taking the apply lock to writing qrt.lock
    # rerun job address -> its result's drift from the previous run (``results/drift.py``)
    drift: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[str, ...]:
        """Jobs that ended other than COMPLETED."""
        return tuple(sorted(a for a, s in self.finished.items() if s != "COMPLETED"))

    @property
    def ok(self) -> bool:
        return self.outcome != "cancelled" and not self.failed

    def to_json(self) -> dict[str, Any]:
        """``qrt apply --json``: these keys, always all of them."""
        return {
            "outcome": self.outcome,
            "plan": self.plan.to_json(),
            "done": dict(sorted(self.done.items())),
            "finished": dict(sorted(self.finished.items())),
            "failed": list(self.failed),
            "pending": list(self.pending),
            "elapsed_seconds": round(self.elapsed, 3),
            "drift": {a: dict(d) for a, d in sorted(self.drift.items())},
        }


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh collected. ``in_flight``: the jobs qrt.lock had waiting when it began."""

    in_flight: tuple[str, ...] = ()
    finished: Mapping[str, str] = field(default_factory=dict)  # job address -> final status
    running: tuple[str, ...] = ()  # still running when it returned (``wait=False``)
    elapsed: float = 0.0
    drift: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # as ApplyResult's

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(sorted(a for a, s in self.finished.items() if s != "COMPLETED"))

    def to_json(self) -> dict[str, Any]:
        """``qrt refresh --json``: these keys, always all of them."""
        return {
            "in_flight": list(self.in_flight),
            "finished": dict(sorted(self.finished.items())),
            "failed": list(self.failed),
            "running": list(self.running),
            "elapsed_seconds": round(self.elapsed, 3),
            "drift": {a: dict(d) for a, d in sorted(self.drift.items())},
        }


@dataclass(frozen=True)
class JobResult:
    """A completed job's result as ``qrt.lock`` records it (a large one read from ``qrt-results/``)."""

    address: str
    record: Mapping[str, Any]
    result: Any
    interim_results: tuple[Any, ...] = ()
