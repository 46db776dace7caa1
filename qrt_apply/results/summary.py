"""What a readable result holds, as data: count distributions and expectation values.

``summarize(result)`` recognises the primitives' shapes (``canonical.py``):

- V2 sampler ``{"results": [{"data": {REG: {"counts": ...}}}]}`` → one ``Distribution`` per PUB,
  register and index of the PUB's shape (labels ``pub 0 c``, ``pub 1 meas [2]``);
- V2 estimator ``{"results": [{"data": {"evs": ..., "stds": ...}}]}`` → one ``Expectation`` per
  PUB and index (``pub 0``, ``pub 0 [1]``);
- V1 sampler ``{"quasi_dists": [...]}`` → quasi-probability distributions (``circuit 0``);
- V1 estimator ``{"values": [...], "metadata": [{"variance", "shots"}]}`` → expectations whose
  standard error is ``sqrt(variance / shots)``.

Anything else (a program's own return value) gives an empty summary: it is shown as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Distribution", "Expectation", "Summary", "summarize"]


@dataclass(frozen=True)
class Distribution:
    label: str
    values: Mapping[str, float]  # outcome -> count (or quasi-probability)
    quasi: bool = False  # values are already probabilities (V1 sampler)
    shots: int | None = None

    @property
    def total(self) -> float:
        return float(sum(self.values.values()))

    def probabilities(self) -> dict[str, float]:
        total = 1.0 if self.quasi else self.total
        if not total:
            return {key: 0.0 for key in self.values}
        return {key: float(value) / total for key, value in self.values.items()}

    def sorted_items(self) -> list[tuple[str, float]]:
        """Most frequent first; ties by outcome."""
        return sorted(self.values.items(), key=lambda item: (-item[1], item[0]))


@dataclass(frozen=True)
class Expectation:
    label: str
    value: float
    std: float | None = None


@dataclass(frozen=True)
class Summary:
    distributions: tuple[Distribution, ...] = ()
    expectations: tuple[Expectation, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.distributions and not self.expectations


def summarize(result: Any) -> Summary:
    if not isinstance(result, Mapping):
        return Summary()
    if isinstance(result.get("results"), list):
        return _v2(result["results"])
    if isinstance(result.get("quasi_dists"), list):
        return _v1_sampler(result)
    if isinstance(result.get("values"), list):
        return _v1_estimator(result)
    return Summary()


def _indexed(value: Any, depth: int, index: tuple[int, ...] = ()) -> Iterator[tuple[str, Any]]:
    """``(" [i, j]", leaf)`` for each leaf of a nested list ``depth`` levels deep ("" when 0)."""
    if depth == 0 or not isinstance(value, list):
        yield (f" [{', '.join(map(str, index))}]" if index else "", value)
        return
    for i, item in enumerate(value):
        yield from _indexed(item, depth - 1, (*index, i))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _v2(pubs: list[Any]) -> Summary:
    distributions: list[Distribution] = []
    expectations: list[Expectation] = []
    for p, pub in enumerate(pubs):
        data = pub.get("data") if isinstance(pub, Mapping) else None
        if not isinstance(data, Mapping):
            continue
        raw_shape = data.get("shape")
        depth = len(raw_shape) if isinstance(raw_shape, list) else 0
        if "evs" in data:
            evs = list(_indexed(data["evs"], depth))
            stds = dict(_indexed(data.get("stds"), depth)) if "stds" in data else {}
            for suffix, value in evs:
                number = _number(value)
                if number is not None:
                    std = _number(stds.get(suffix))
                    expectations.append(Expectation(f"pub {p}{suffix}", number, std))
            continue
        for register, entry in data.items():
            if not isinstance(entry, Mapping) or "counts" not in entry:
                continue
            depth = len(entry.get("shape") or [])
            shots = entry.get("num_shots")
            for suffix, counts in _indexed(entry["counts"], depth):
                if isinstance(counts, Mapping):
                    values = {str(k): float(v) for k, v in counts.items() if _number(v) is not None}
                    distributions.append(
                        Distribution(
                            f"pub {p} {register}{suffix}",
                            values,
                            shots=int(shots) if isinstance(shots, int) else None,
                        )
                    )
    return Summary(tuple(distributions), tuple(expectations))


def _metadata(result: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    metadata = result.get("metadata")
    item = metadata[index] if isinstance(metadata, list) and index < len(metadata) else None
    return item if isinstance(item, Mapping) else {}


def _v1_sampler(result: Mapping[str, Any]) -> Summary:
    distributions = []
    for i, dist in enumerate(result["quasi_dists"]):
        if not isinstance(dist, Mapping):
            continue
        shots = _metadata(result, i).get("shots")
        values = _binary({str(k): float(v) for k, v in dist.items() if _number(v) is not None})
        distributions.append(
            Distribution(
                f"circuit {i}",
                values,
                quasi=True,
                shots=int(shots) if isinstance(shots, int) else None,
            )
        )
    return Summary(tuple(distributions))


def _binary(values: Mapping[str, float]) -> dict[str, float]:
    """V1 outcome keys in hex (``0x3``) as bitstrings as wide as the widest (``11``); other keys
    (already bitstrings) unchanged."""
    try:
        numbers = {key: int(key, 16) for key in values if key.startswith("0x")}
    except ValueError:
        return dict(values)
    if len(numbers) != len(values):
        return dict(values)
    width = max([1, *(n.bit_length() for n in numbers.values())])
    return {format(numbers[key], f"0{width}b"): value for key, value in values.items()}


def _v1_estimator(result: Mapping[str, Any]) -> Summary:
    expectations = []
    for i, value in enumerate(result["values"]):
        number = _number(value)
        if number is None:
            continue
        meta = _metadata(result, i)
        variance, shots = _number(meta.get("variance")), _number(meta.get("shots"))
        std = math.sqrt(max(variance, 0.0) / shots) if variance is not None and shots else None
        expectations.append(Expectation(f"circuit {i}", number, std))
    return Summary(expectations=tuple(expectations))
