"""Result drift: how far a rerun's result moved from the previous run's.

- Count distributions (sampler): the **total variation distance** between the two runs'
  probabilities, ``½ Σ |p(x) − q(x)|`` over every outcome either run saw (0: the same, 1: disjoint).
- Expectation values (estimator): a **z-score**, ``|new − old| / √(σ_new² + σ_old²)`` with each run's
  standard error (an exact pair of equal values scores 0, of different values infinity).

Entries are matched by label (``pub 0 c``, ``pub 1``); the drift of a job is the largest over its
entries. A batch's ``result_tolerance`` (``{tvd: …, z: …}``) bounds both; ``DEFAULT_TOLERANCE``
applies to what it does not set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qrt_apply.results.summary import Summary, summarize

__all__ = [
    "DEFAULT_TOLERANCE",
    "Drift",
    "EntryDrift",
    "compare_results",
    "compare_summaries",
    "drift_words",
    "tolerance_of",
]

# Loose enough for the shot noise of two seeds of a few hundred shots (the TVD of two 100-shot
# samples of a Bell state is about 0.06 on average), tight enough to catch a changed circuit.
DEFAULT_TOLERANCE: dict[str, float] = {"tvd": 0.1, "z": 4.0}


@dataclass(frozen=True)
class EntryDrift:
    label: str
    metric: str  # "tvd" | "z"
    value: float
    old: Any = None  # for expectations: the old and new value
    new: Any = None


@dataclass(frozen=True)
class Drift:
    entries: tuple[EntryDrift, ...]
    unmatched: tuple[str, ...] = ()  # labels only one of the runs has

    @property
    def comparable(self) -> bool:
        return bool(self.entries)

    def worst(self, metric: str) -> float | None:
        values = [e.value for e in self.entries if e.metric == metric]
        return max(values) if values else None

    def exceeds(self, tolerance: Mapping[str, float]) -> list[EntryDrift]:
        """The entries past ``tolerance`` (entries only one run has are not compared: see
        ``unmatched``)."""
        limits = {**DEFAULT_TOLERANCE, **tolerance}
        return [e for e in self.entries if e.value > limits[e.metric]]

    def record(self, against: str | None) -> dict[str, Any]:
        """The compact form kept in a job's lockfile record."""
        out: dict[str, Any] = {"against": against}
        for metric in ("tvd", "z"):
            worst = self.worst(metric)
            if worst is not None:
                out[metric] = _rounded(worst)
        if self.unmatched:
            out["unmatched"] = list(self.unmatched)
        return out


def _rounded(value: float) -> float | str:
    if math.isinf(value):
        return "inf"
    return float(f"{value:.4g}")


def tolerance_of(value: Mapping[str, Any] | None) -> dict[str, float]:
    return {**DEFAULT_TOLERANCE, **{k: float(v) for k, v in (value or {}).items()}}


def compare_results(old: Any, new: Any) -> Drift:
    return compare_summaries(summarize(old), summarize(new))


def compare_summaries(old: Summary, new: Summary) -> Drift:
    entries: list[EntryDrift] = []
    old_dists = {d.label: d for d in old.distributions}
    new_dists = {d.label: d for d in new.distributions}
    for label in sorted(old_dists.keys() & new_dists.keys()):
        p, q = old_dists[label].probabilities(), new_dists[label].probabilities()
        tvd = 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in p.keys() | q.keys())
        entries.append(EntryDrift(label, "tvd", tvd))
    old_evs = {e.label: e for e in old.expectations}
    new_evs = {e.label: e for e in new.expectations}
    for label in sorted(old_evs.keys() & new_evs.keys()):
        a, b = old_evs[label], new_evs[label]
        delta = abs(b.value - a.value)
        spread = math.sqrt((a.std or 0.0) ** 2 + (b.std or 0.0) ** 2)
        z = delta / spread if spread > 0 else (0.0 if delta == 0 else math.inf)
        entries.append(EntryDrift(label, "z", z, a.value, b.value))
    unmatched = sorted((old_dists.keys() ^ new_dists.keys()) | (old_evs.keys() ^ new_evs.keys()))
    return Drift(tuple(entries), tuple(unmatched))


def drift_words(entry: Mapping[str, Any]) -> str:
    """A drift record (``Drift.record``) in a few words: ``drift tvd 0.012, z 0.8``."""
    parts = [f"{metric} {entry[metric]}" for metric in ("tvd", "z") if metric in entry]
    if not parts:
        return "drift: not comparable with the previous run"
    text = "drift " + ", ".join(parts)
    return text + (" (PAST TOLERANCE)" if entry.get("past_tolerance") else "")
