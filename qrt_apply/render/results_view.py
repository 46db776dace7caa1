"""Text views of results: a job's counts and expectation values, a batch's sweep, a drift report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qrt_apply.results.drift import Drift, drift_words
from qrt_apply.results.summary import Summary
from qrt_apply.results.sweep import Sweep

__all__ = [
    "MAX_OUTCOMES",
    "drift_summary",
    "render_drift",
    "render_summary",
    "render_sweep",
    "table",
]

MAX_OUTCOMES = 32  # rows of one count table; --json shows them all


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the first column left-aligned, the others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _pm(value: float, std: float | None) -> str:
    return f"{value:.6g}" + (f" ± {std:.2g}" if std is not None else "")


def render_summary(summary: Summary, result: Any) -> list[str]:
    """Count tables (most frequent first, with probabilities) and expectation values ± standard
    error; a result of another shape as indented JSON."""
    if summary.empty:
        return json.dumps(result, sort_keys=True, indent=2, ensure_ascii=False).splitlines()
    lines: list[str] = []
    for dist in summary.distributions:
        shots = f" ({dist.shots} shots)" if dist.shots else ""
        lines.append(f"{dist.label}{shots}" + (": quasi-probabilities" if dist.quasi else ""))
        probs = dist.probabilities()
        items = dist.sorted_items()
        if dist.quasi:
            rows = [[k, f"{v:.4f}"] for k, v in items[:MAX_OUTCOMES]]
            lines.extend(table(["outcome", "probability"], rows))
        else:
            rows = [[k, _number(v), f"{probs[k]:.4f}"] for k, v in items[:MAX_OUTCOMES]]
            lines.extend(table(["outcome", "count", "probability"], rows))
        if len(items) > MAX_OUTCOMES:
            lines.append(f"  ... {len(items) - MAX_OUTCOMES} more outcome(s) (--json shows all)")
        lines.append("")
    if summary.expectations:
        rows = [
            [e.label, f"{e.value:.6g}", f"± {e.std:.2g}" if e.std is not None else ""]
            for e in summary.expectations
        ]
        lines.extend(table(["expectation value", "value", "std error"], rows, indent=""))
        lines.append("")
    return lines[:-1] if lines and not lines[-1] else lines


def render_sweep(sweep: Sweep) -> list[str]:
    """One row per job: its matrix values, then one column per series."""
    matrices = sweep.matrices
    jobs: list[str] = []
    for points in sweep.series.values():
        for point in points:
            if point.job not in jobs:
                jobs.append(point.job)
    if not jobs:
        return ["(no completed job of this batch has counts or expectation values)"]
    variables = sorted({k for m in matrices.values() for k in m})
    labels = list(sweep.series)
    cells: dict[tuple[str, str], str] = {}
    for label, points in sweep.series.items():
        for point in points:
            cells[(point.job, label)] = _pm(point.value, point.std)
    order = jobs
    axis = sweep.variable
    if sweep.numeric and axis is not None:
        order = sorted(jobs, key=lambda j: matrices.get(j, {}).get(axis, 0))
    rows = [
        [job, *(str(matrices.get(job, {}).get(v, "")) for v in variables)]
        + [cells.get((job, label), "") for label in labels]
        for job in order
    ]
    lines = table(["job", *variables, *labels], rows)
    if sweep.left_out:
        lines.append(f"  left out (no {sweep.variable} value): {', '.join(sweep.left_out)}")
    return lines


def render_drift(address: str, drift: Drift, tolerance: Mapping[str, float]) -> list[str]:
    if not drift.comparable:
        return [f"{address}: not comparable with the previous run (its result has other entries)"]
    past = {id(e) for e in drift.exceeds(tolerance)}
    rows = []
    for entry in drift.entries:
        limit = tolerance[entry.metric]
        verdict = "PAST TOLERANCE" if id(entry) in past else "ok"
        value = "inf" if entry.value == float("inf") else f"{entry.value:.4g}"
        change = ""
        if entry.old is not None:
            change = f"{entry.old:.6g} → {entry.new:.6g}"
        rows.append([entry.label, entry.metric, value, f"{limit:g}", change, verdict])
    lines = table(["entry", "metric", "drift", "tolerance", "change", ""], rows)
    if drift.unmatched:
        lines.append("  only in one run: " + ", ".join(drift.unmatched))
    return lines


def drift_summary(drift: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The apply summary's lines for rerun jobs compared with their previous run."""
    if not drift:
        return []
    past = sorted(a for a, d in drift.items() if d.get("past_tolerance"))
    head = f"Result drift of {len(drift)} rerun job(s) against the previous run"
    head += f", {len(past)} past tolerance:" if past else ", all within tolerance:"
    width = max(len(address) for address in drift)
    rows = [f"  {a:<{width}}  {drift_words(entry)}" for a, entry in sorted(drift.items())]
    return [head, *rows]
