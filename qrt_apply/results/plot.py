"""``qrt results --plot FILE``: a picture of a result, drawn with matplotlib (the ``plot`` extra).

A job's counts become a histogram per register (outcomes in bit order, each bar labelled with its
probability; the ``MAX_BARS`` most frequent outcomes of a wide register), its expectation values bars with standard-error whiskers; a batch becomes a sweep
plot (each series against the matrix variable, with error bars where there are standard errors).
The format follows the file's suffix, ``.png`` or ``.svg``. matplotlib is imported here only,
when a plot is asked for: ``qrt`` starts without it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from qrt_apply.errors import ConfigError
from qrt_apply.fileio import atomic_write
from qrt_apply.results.summary import Summary
from qrt_apply.results.sweep import Sweep

__all__ = ["FORMATS", "MISSING", "plot_summary", "plot_sweep"]

FORMATS = (".png", ".svg")
MISSING = "plotting needs matplotlib: pip install 'qrt-apply[plot]'"
MAX_BARS = 48  # bars of one histogram


def _figure(rows: int) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(MISSING) from None
    return Figure(figsize=(7.5, 3.2 * max(1, rows)), layout="constrained")


def _check(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--plot {path.name}: the file must end in .png or .svg")
    return suffix[1:]


def _save(figure: Any, path: Path, fmt: str) -> None:
    import matplotlib

    buffer = io.BytesIO()
    # Fixed metadata and ids: the same result draws the same bytes (no date in the file).
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {"Date": None}
    # SVG text stays text (searchable, smaller) rather than outlined glyphs.
    with matplotlib.rc_context({"svg.hashsalt": "qrt", "svg.fonttype": "none"}):
        figure.savefig(buffer, format=fmt, metadata=metadata, dpi=110)
    atomic_write(path, buffer.getvalue())


def plot_summary(summary: Summary, path: Path, title: str) -> None:
    """A histogram per count distribution and one bar chart of the expectation values."""
    fmt = _check(path)
    if summary.empty:
        raise ConfigError(f"{title}: the result has no counts or expectation values to plot")
    panels = len(summary.distributions) + (1 if summary.expectations else 0)
    figure = _figure(panels)
    axes = figure.subplots(panels, 1, squeeze=False)[:, 0]
    for ax, dist in zip(axes, summary.distributions, strict=False):
        # Many outcomes (a wide register): the most frequent ones, still in bit order.
        outcomes = sorted(o for o, _ in dist.sorted_items()[:MAX_BARS])
        heights = [dist.values[o] for o in outcomes]
        probs = dist.probabilities()
        bars = ax.bar(range(len(outcomes)), heights, color="#4c72b0")
        ax.set_xticks(range(len(outcomes)), outcomes, rotation=90 if len(outcomes) > 16 else 0)
        ax.set_ylabel("quasi-probability" if dist.quasi else "counts")
        ax.set_xlabel("outcome (bit 0 rightmost)")
        shots = f", {dist.shots} shots" if dist.shots else ""
        some = (
            f", the {len(outcomes)} most frequent of {len(dist.values)} outcomes"
            if len(outcomes) < len(dist.values)
            else ""
        )
        ax.set_title(f"{title}: {dist.label}{shots}{some}", fontsize=10)
        if len(outcomes) <= 16:
            ax.bar_label(bars, labels=[f"{probs[o]:.3f}" for o in outcomes], fontsize=8)
        ax.margins(y=0.15)
    if summary.expectations:
        ax = axes[-1]
        labels = [e.label for e in summary.expectations]
        values = [e.value for e in summary.expectations]
        errors = [e.std or 0.0 for e in summary.expectations]
        ax.bar(range(len(labels)), values, yerr=errors, capsize=4, color="#dd8452")
        ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0)
        if len(labels) < 4:  # a lone bar would span the whole width
            ax.set_xlim(-1.5, len(labels) + 0.5)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("expectation value")
        ax.set_title(f"{title}: expectation values ± standard error", fontsize=10)
    _save(figure, path, fmt)


def plot_sweep(sweep: Sweep, path: Path, title: str) -> None:
    """Each series against the matrix variable (by job name when there is none)."""
    fmt = _check(path)
    if not sweep.series:
        raise ConfigError(f"{title}: no completed job of the batch has values to plot")
    figure = _figure(1)
    ax = figure.subplots()
    categories: list[str] = []
    if not sweep.numeric:
        for points in sweep.series.values():
            for point in points:
                if str(point.x) not in categories:
                    categories.append(str(point.x))
    for label, points in sweep.series.items():
        xs = [p.x if sweep.numeric else categories.index(str(p.x)) for p in points]
        ys = [p.value for p in points]
        errors = [p.std or 0.0 for p in points] if any(p.std for p in points) else None
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
    if not sweep.numeric:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(sweep.variable or "job")
    probabilities = all(": P(" in label for label in sweep.series)
    expectations = not any(": P(" in label for label in sweep.series)
    ax.set_ylabel(
        "probability" if probabilities else "expectation value" if expectations else "value"
    )
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(figure, path, fmt)
