"""What ``qrt results`` reports, as library calls over a loaded ``Lockfile``: a job's result, a
batch's sweep, and the drift of a job's result from its previous completed run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qrt_apply.errors import ConfigError
from qrt_apply.lockfile import Lockfile
from qrt_apply.model import DesiredState
from qrt_apply.results.canonical import readable
from qrt_apply.results.drift import Drift, compare_results, tolerance_of
from qrt_apply.results.sweep import Sweep, SweepJob, sweep_of

__all__ = [
    "Comparison",
    "Comparisons",
    "batch_jobs",
    "batch_sweep",
    "compare_all",
    "compare_job",
    "completed_result",
    "previous_completed",
    "tolerance_for",
]


def completed_result(lock: Lockfile, address: str) -> tuple[dict[str, Any], Any]:
    """The record and readable result of a completed job; a clear error otherwise."""
    record = lock.job(address)
    if record is None:
        raise ConfigError(f"{address} is not a job in {lock.path.name}")
    if record.get("status") != "COMPLETED":
        raise ConfigError(
            f"{address} has no result: status {record.get('status')}"
            + (f"\n{record['error']}" if record.get("error") else "")
        )
    return record, readable(lock.load_result(record))


def previous_completed(lock: Lockfile, record: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The most recent earlier run of a job that completed, and its readable result; ``({}, None)``
    when there is none."""
    for old in record.get("history") or []:
        if isinstance(old, Mapping) and old.get("status") == "COMPLETED":
            return dict(old), readable(lock.load_result(old))
    return {}, None


def batch_jobs(lock: Lockfile, batch: str) -> dict[str, dict[str, Any]]:
    """The job records of ``batch`` (``batch.NAME`` or ``NAME``), by address."""
    name = batch[len("batch.") :] if batch.startswith("batch.") else batch
    prefix = f"job.{name}/"
    found = {a: r for a, r in sorted(lock.jobs().items()) if a.startswith(prefix)}
    if not found:
        raise ConfigError(f"batch.{name} has no jobs in {lock.path.name}")
    return found


def _matrix(record: Mapping[str, Any]) -> dict[str, Any]:
    definition = record.get("definition")
    matrix = definition.get("matrix") if isinstance(definition, Mapping) else None
    return dict(matrix) if isinstance(matrix, Mapping) else {}


def batch_sweep(lock: Lockfile, batch: str) -> Sweep:
    """The sweep of a batch's completed jobs (``sweep.matrices``: each job's matrix values)."""
    jobs: list[SweepJob] = []
    for address, record in batch_jobs(lock, batch).items():
        if record.get("status") != "COMPLETED":
            continue
        name = address.split("/", 1)[1]
        jobs.append(SweepJob(name, _matrix(record), readable(lock.load_result(record))))
    return sweep_of(jobs)


@dataclass(frozen=True)
class Comparison:
    address: str
    drift: Drift | None  # None: no earlier completed run
    previous_id: str | None

    def past(self, tolerance: Mapping[str, float]) -> bool:
        return self.drift is not None and bool(self.drift.exceeds(tolerance))


@dataclass(frozen=True)
class Comparisons:
    tolerance: Mapping[str, float]
    jobs: tuple[Comparison, ...]

    @property
    def past(self) -> tuple[str, ...]:
        """The jobs whose drift exceeds the tolerance."""
        return tuple(c.address for c in self.jobs if c.past(self.tolerance))


def compare_job(lock: Lockfile, address: str) -> Comparison:
    record, result = completed_result(lock, address)
    old, old_result = previous_completed(lock, record)
    if not old:
        return Comparison(address, None, None)
    return Comparison(address, compare_results(old_result, result), old.get("id"))


def compare_all(lock: Lockfile, desired: DesiredState | None, address: str) -> Comparisons:
    """``compare_job`` for a job, or for each completed job of ``batch.NAME``."""
    if address.startswith("batch."):
        records = batch_jobs(lock, address)
        addresses = [a for a, r in records.items() if r.get("status") == "COMPLETED"]
    else:
        addresses = [address]
    return Comparisons(
        tolerance_for(desired, address), tuple(compare_job(lock, a) for a in addresses)
    )


def tolerance_for(desired: DesiredState | None, address: str) -> dict[str, float]:
    """The result tolerance of the batch ``address`` (a job or batch address) belongs to, as the
    manifests set it, over ``DEFAULT_TOLERANCE``."""
    name = address[len("batch.") :] if address.startswith("batch.") else address
    name = name[len("job.") :].split("/", 1)[0] if name.startswith("job.") else name
    batch = desired.batches.get(name) if desired is not None else None
    return tolerance_of(batch.result_tolerance if batch is not None else None)
