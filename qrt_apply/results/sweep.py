"""A batch's results against its matrix variable: the data of a sweep table and plot.

Each job of the batch contributes one point per series. A series is an expectation value
(``pub 0``) or the probability of one outcome (``pub 0 c: P(11)``; the four most probable outcomes
over the batch). The x axis is the matrix variable most jobs have (then the one with the most
distinct values; recorded per job in qrt.lock as ``definition.matrix``); other variables that vary
go into the series label, one line per value. Jobs without a value of the x variable are left out
(and named); a batch without a matrix is placed by job name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qrt_apply.results.summary import summarize

__all__ = ["Sweep", "SweepJob", "SweepPoint", "sweep_of"]

TOP_OUTCOMES = 4


@dataclass(frozen=True)
class SweepJob:
    name: str
    matrix: Mapping[str, Any]
    result: Any


@dataclass(frozen=True)
class SweepPoint:
    job: str
    x: Any
    value: float
    std: float | None = None


@dataclass(frozen=True)
class Sweep:
    variable: str | None  # None: the x axis is the job name
    series: Mapping[str, tuple[SweepPoint, ...]]
    numeric: bool  # x values are all numbers (else categories, in job order)
    left_out: tuple[str, ...] = ()  # jobs without a value of the variable
    matrices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # job -> its values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _axis(jobs: Sequence[SweepJob]) -> str | None:
    """The matrix variable most jobs have; among those, the one with the most distinct values."""
    names = sorted({name for job in jobs for name in job.matrix})
    if not names:
        return None

    def rank(name: str) -> tuple[int, int]:
        having = [job for job in jobs if name in job.matrix]
        return len(having), len({repr(job.matrix[name]) for job in having})

    return max(names, key=rank)  # max keeps the first of equals: names are sorted


def sweep_of(jobs: Sequence[SweepJob]) -> Sweep:
    variable = _axis(jobs)
    placed = [job for job in jobs if variable is None or variable in job.matrix]
    left_out = tuple(job.name for job in jobs if job not in placed)
    points: dict[str, list[SweepPoint]] = {}
    probabilities: dict[str, dict[str, float]] = {}  # distribution label -> outcome -> total p
    summaries = [(job, summarize(job.result)) for job in placed]
    for _, summary in summaries:
        for dist in summary.distributions:
            totals = probabilities.setdefault(dist.label, {})
            for outcome, p in dist.probabilities().items():
                totals[outcome] = totals.get(outcome, 0.0) + p
    top = {
        label: sorted(totals, key=lambda o: (-totals[o], o))[:TOP_OUTCOMES]
        for label, totals in probabilities.items()
    }
    # Other variables name the series only where they vary: a 2-D matrix gives one line per value.
    varying = sorted(
        name
        for name in {n for job in placed for n in job.matrix}
        if name != variable and len({repr(job.matrix.get(name)) for job in placed}) > 1
    )
    for job, summary in summaries:
        x = job.matrix[variable] if variable is not None else job.name
        others = ", ".join(f"{k}={job.matrix.get(k)}" for k in varying)
        suffix = f" ({others})" if others else ""
        for expectation in summary.expectations:
            points.setdefault(expectation.label + suffix, []).append(
                SweepPoint(job.name, x, expectation.value, expectation.std)
            )
        for dist in summary.distributions:
            probs = dist.probabilities()
            for outcome in top.get(dist.label, []):
                label = f"{dist.label}: P({outcome}){suffix}"
                points.setdefault(label, []).append(
                    SweepPoint(job.name, x, probs.get(outcome, 0.0))
                )
    numeric = variable is not None and all(_is_number(job.matrix[variable]) for job in placed)
    if numeric:
        ordered = {k: tuple(sorted(v, key=lambda p: p.x)) for k, v in points.items()}
    else:
        ordered = {k: tuple(v) for k, v in points.items()}
    matrices = {job.name: dict(job.matrix) for job in jobs}
    return Sweep(variable, ordered, numeric, left_out, matrices)
