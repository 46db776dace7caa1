"""Expand a job entry's ``matrix`` into one job per combination, and name each job.

Matrix values are numbers, strings, booleans or lists of them. A job's name comes from the entry's
``name``:

* a name **template** names every matrix variable, as ``${VAR}`` (the value's slug, below) or
  ``${VAR.index}`` (the value's 0-based position in its list, so that editing a value keeps the
  job's name and reruns it);
* a name **without variables** is the stem of derived names: ``NAME-SLUG1-SLUG2...``, one slug
  per variable in the matrix's order.

A value's slug is a pure function of the value: ``0.1`` → ``0p1``, ``-1`` → ``m1``, ``1e-05`` →
``1em05``, ``true`` → ``true``, ``"Hello World"`` → ``hello-world``, ``[1, 0.5]`` → ``1-0p5``. Two
combinations that would make the same name are an error naming both. In inputs and options,
``${VAR}`` is the value itself: a string that is exactly one variable takes its value and type.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from qrt_apply.errors import ManifestError

__all__ = [
    "expand_matrix",
    "matrix_size",
    "substitute",
    "unresolved_variables",
    "value_slug",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# In a name template: ${VAR} or ${VAR.index}
_NAME_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(\.index)?\}")
_ANY_VAR = re.compile(r"\$\{([^}]*)\}")
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def substitute(value: Any, variables: Mapping[str, Any], *, used: set[str]) -> Any:
    """Replace ``${var}``; a string that is exactly one variable takes the variable's value and type."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole and whole.group(1) in variables:
            used.add(whole.group(1))
            return variables[whole.group(1)]

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                return match.group(0)
            used.add(name)
            return str(variables[name])

        return _VAR.sub(repl, value)
    if isinstance(value, Mapping):
        return {key: substitute(item, variables, used=used) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, used=used) for item in value]
    return value


def unresolved_variables(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_VAR.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(unresolved_variables(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(unresolved_variables(item) for item in value))
    return set()


def value_slug(value: Any) -> str:
    """The part of a job name that stands for matrix value ``value`` ("" when it has none).

    Raises ``ValueError`` for what no matrix may hold (null, mappings, NaN and infinities)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"m{-value}" if value < 0 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        # repr is the shortest text that reads back as the same float: 0.1, 2.0, 1e-05
        text = repr(value).replace("+", "")
        return text.replace("-", "m").replace(".", "p")
    if isinstance(value, str):
        return _NOT_NAME.sub("-", value.lower()).strip("-")
    if isinstance(value, list):
        return "-".join(part for part in (value_slug(item) for item in value) if part)
    raise ValueError("must be a number, string, boolean or a list of them")


def _shown(variables: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{key}={json.dumps(val, ensure_ascii=False)}" for key, val in variables.items()
    )


def _text_size(value: Any) -> int:
    """Roughly the characters ``value`` holds: what substituting variables has to scan."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(len(str(key)) + _text_size(item) for key, item in value.items())
    if isinstance(value, list):
        return sum(_text_size(item) for item in value) + 1
    return 8


def matrix_size(job: Mapping[str, Any]) -> int:
    """How many jobs the job entry's matrix makes, computed without making them."""
    matrix = job.get("matrix") or {}
    return math.prod(len(values) if isinstance(values, list) else 1 for values in matrix.values())


def _slugs(
    name: str, matrix: Mapping[str, list[Any]], manifest: str, line: int
) -> dict[str, list[str]]:
    """Each variable's slugs, in value order; a value that cannot be a name part is refused."""
    slugs: dict[str, list[str]] = {}
    for key, values in matrix.items():
        slugs[key] = []
        for val in values:
            try:
                slug = value_slug(val)
            except ValueError as exc:
                raise ManifestError(
                    f"job {name!r}: matrix value {key}={json.dumps(val)} {exc}", manifest, line
                ) from None
            slugs[key].append(slug)
    return slugs


def _namer(name: str, matrix: Mapping[str, list[Any]], manifest: str, line: int) -> Any:
    """A function of the value indexes of one combination that gives the job's name."""
    slugs = _slugs(name, matrix, manifest, line)
    keys = list(matrix)
    if not _ANY_VAR.search(name):

        def derived(indexes: Mapping[str, int]) -> str:
            parts = [slugs[key][indexes[key]] for key in keys]
            for key, part in zip(keys, parts, strict=True):
                if not part:
                    value = json.dumps(matrix[key][indexes[key]], ensure_ascii=False)
                    raise ManifestError(
                        f"job {name!r}: matrix value {key}={value} gives no name; write a name "
                        f"template with ${{{key}.index}}",
                        manifest,
                        line,
                    )
            return "-".join([name, *parts])

        return derived
    named = {m.group(1) for m in _NAME_VAR.finditer(name)}
    missing = [var for var in keys if var not in named]
    if missing:
        raise ManifestError(
            f"job {name!r}: matrix variable {missing[0]!r} must appear in the name as "
            f"${{{missing[0]}}} or ${{{missing[0]}.index}} (or write a name without variables "
            "to derive one from the values)",
            manifest,
            line,
        )

    def templated(indexes: Mapping[str, int]) -> str:
        def repl(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in matrix:
                return match.group(0)
            return str(indexes[key]) if match.group(2) else slugs[key][indexes[key]]

        job_name = _NAME_VAR.sub(repl, name)
        leftover = _ANY_VAR.search(job_name)
        if leftover:
            raise ManifestError(
                f"job {name!r} uses ${{{leftover.group(1)}}}, which is not in its matrix",
                manifest,
                line,
            )
        return job_name

    return templated


def expand_matrix(
    job: Mapping[str, Any],
    *,
    manifest: str,
    line: int,
    max_jobs: int = 10_000,
    max_bytes: int = 64 * 1024 * 1024,
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """One (name, inputs, variables) per combination of the job's matrix (one when there is none).

    Refused before anything is made: more than ``max_jobs`` combinations, or inputs that would
    be scanned (and perhaps copied) for more than ``max_bytes`` characters in all."""
    name = str(job["name"])
    inputs = dict(job.get("inputs") or {})
    matrix: Mapping[str, list[Any]] = job.get("matrix") or {}
    size = matrix_size(job)
    if size > max_jobs:
        raise ManifestError(
            f"job {name!r}: its matrix makes {size:,} jobs, more than the limit of {max_jobs:,} "
            "(qrt.yaml limits.max_matrix_jobs)",
            manifest,
            line,
        )
    if size > 1 and size * _text_size(inputs) > max_bytes:
        raise ManifestError(
            f"job {name!r}: its {size:,} matrix jobs would expand to more than {max_bytes:,} "
            "characters of inputs (qrt.yaml limits.max_expanded_bytes)",
            manifest,
            line,
        )
    if not matrix:
        leftover = {m.group(1) for m in _ANY_VAR.finditer(name)} | unresolved_variables(inputs)
        if leftover:
            raise ManifestError(
                f"job {name!r} uses ${{{sorted(leftover)[0]}}} but has no matrix", manifest, line
            )
        return [(name, inputs, {})]
    namer = _namer(name, matrix, manifest, line)
    expanded = []
    made: dict[str, dict[str, Any]] = {}
    keys = list(matrix)
    for indexes in itertools.product(*(range(len(matrix[key])) for key in keys)):
        at = dict(zip(keys, indexes, strict=True))
        variables = {key: matrix[key][at[key]] for key in keys}
        job_name = namer(at)
        if job_name in made:
            raise ManifestError(
                f"job {name!r}: matrix values {_shown(made[job_name])} and {_shown(variables)} "
                f"both make the job name {job_name!r}; write a name template with ${{VAR.index}}",
                manifest,
                line,
            )
        made[job_name] = variables
        used: set[str] = set()
        job_inputs = substitute(inputs, variables, used=used)
        leftover = unresolved_variables(job_inputs)
        if leftover:
            raise ManifestError(
                f"job {name!r} uses ${{{sorted(leftover)[0]}}}, which is not in its matrix",
                manifest,
                line,
            )
        expanded.append((job_name, job_inputs, variables))
    return expanded
