"""Resolve ``{$file: PATH}`` references and expand ``matrix`` sweeps in job definitions."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qrt_apply.errors import ManifestError
from qrt_apply.manifests.yamldocs import JsonPath
from qrt_apply.model import sha256_hex

__all__ = [
    "expand_matrix",
    "inside_repository",
    "resolve_files",
    "substitute",
    "unresolved_variables",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Locate = Callable[[JsonPath], int]


def inside_repository(root: Path, base_dir: Path, relative: str) -> Path | None:
    """``relative`` resolved against ``base_dir``; None when it escapes ``root``."""
    candidate = (base_dir / relative).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate


def resolve_files(
    value: Any,
    *,
    root: Path,
    base_dir: Path,
    manifest: str,
    locate: Locate,
    path: JsonPath,
    files: dict[str, str],
) -> Any:
    """Replace every ``{$file: PATH}`` with the file's text; record each file's byte digest in ``files``."""
    if isinstance(value, Mapping):
        if "$file" in value:
            line = locate(path)
            if len(value) != 1 or not isinstance(value["$file"], str):
                raise ManifestError("a $file reference is exactly {$file: PATH}", manifest, line)
            target = inside_repository(root, base_dir, value["$file"])
            if target is None:
                raise ManifestError(
                    f"$file {value['$file']!r} resolves outside the repository", manifest, line
                )
            if not target.is_file():
                raise ManifestError(f"$file {value['$file']!r} does not exist", manifest, line)
            raw = target.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(
                    f"$file {value['$file']!r} is not UTF-8 text", manifest, line
                ) from None
            files[target.relative_to(root.resolve()).as_posix()] = sha256_hex(raw)
            return text
        return {
            key: resolve_files(
                item,
                root=root,
                base_dir=base_dir,
                manifest=manifest,
                locate=locate,
                path=(*path, key),
                files=files,
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            resolve_files(
                item,
                root=root,
                base_dir=base_dir,
                manifest=manifest,
                locate=locate,
                path=(*path, index),
                files=files,
            )
            for index, item in enumerate(value)
        ]
    return value


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


def expand_matrix(
    job: Mapping[str, Any], *, manifest: str, line: int
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """One (name, inputs, variables) per combination of the job's matrix (one when there is none)."""
    name = str(job["name"])
    inputs = dict(job.get("inputs") or {})
    matrix: Mapping[str, list[Any]] = job.get("matrix") or {}
    if not matrix:
        leftover = unresolved_variables(name) | unresolved_variables(inputs)
        if leftover:
            raise ManifestError(
                f"job {name!r} uses ${{{sorted(leftover)[0]}}} but has no matrix", manifest, line
            )
        return [(name, inputs, {})]
    missing = [var for var in matrix if "${" + var + "}" not in name]
    if missing:
        raise ManifestError(
            f"job {name!r}: matrix variable {missing[0]!r} must appear in the name as ${{{missing[0]}}}",
            manifest,
            line,
        )
    expanded = []
    keys = list(matrix)
    for combination in itertools.product(*(matrix[key] for key in keys)):
        variables = dict(zip(keys, combination, strict=True))
        for key, val in variables.items():
            if not isinstance(val, str | int | float | bool):
                raise ManifestError(
                    f"job {name!r}: matrix values of {key!r} must be scalars", manifest, line
                )
        used: set[str] = set()
        job_name = substitute(name, variables, used=used)
        job_inputs = substitute(inputs, variables, used=used)
        leftover = unresolved_variables(job_name) | unresolved_variables(job_inputs)
        if leftover:
            raise ManifestError(
                f"job {name!r} uses ${{{sorted(leftover)[0]}}}, which is not in its matrix",
                manifest,
                line,
            )
        expanded.append((str(job_name), job_inputs, variables))
    return expanded
