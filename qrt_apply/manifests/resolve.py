"""Resolve ``{$file: PATH}`` references and expand ``matrix`` sweeps in job definitions.

Files are read bounded (size checked with stat first, then at most limit+1 bytes read) and once per
load; a matrix is sized before it is expanded.
"""

from __future__ import annotations

import itertools
import math
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
    "matrix_size",
    "read_bounded",
    "read_repository_file",
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


def read_bounded(path: Path, limit: int, what: str, manifest: str, line: int | None) -> bytes:
    """The bytes of ``path``, refused when over ``limit``: stat first, so a huge (or sparse) file is
    never read, then at most ``limit + 1`` bytes, in case it grew in between."""
    try:
        size = path.stat().st_size
        if size <= limit:
            with path.open("rb") as handle:
                raw = handle.read(limit + 1)
            size = len(raw)
    except OSError as exc:
        raise ManifestError(f"{what}: cannot read: {exc.strerror}", manifest, line) from None
    if size > limit:
        raise ManifestError(
            f"{what} is {size:,} bytes, more than the limit of {limit:,} (qrt.yaml limits)",
            manifest,
            line,
        )
    return raw


def read_repository_file(
    root: Path, base_dir: Path, relative: str, *, what: str, manifest: str, line: int, limit: int
) -> tuple[Path, bytes]:
    """A file a manifest names: inside the repository, a regular file, at most ``limit`` bytes."""
    if "\0" in relative:
        raise ManifestError(f"{what} {relative!r} contains a NUL character", manifest, line)
    try:
        target = inside_repository(root, base_dir, relative)
        exists = target is not None and target.is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise ManifestError(f"{what} {relative!r}: {exc.strerror}", manifest, line) from None
    if target is None:
        raise ManifestError(f"{what} {relative!r} resolves outside the repository", manifest, line)
    if not exists:
        raise ManifestError(f"{what} {relative!r} does not exist", manifest, line)
    return target, read_bounded(target, limit, f"{what} {relative!r}", manifest, line)


def resolve_files(
    value: Any,
    *,
    root: Path,
    base_dir: Path,
    manifest: str,
    locate: Locate,
    path: JsonPath,
    files: dict[str, str],
    max_bytes: int,
    cache: dict[Path, tuple[str, str]],
) -> Any:
    """Replace every ``{$file: PATH}`` with the file's text; record each file's byte digest in ``files``.

    ``cache`` (file -> text, digest) spans one load: a circuit shared by many jobs is read once and
    its text is one string in memory."""
    if isinstance(value, Mapping):
        if "$file" in value:
            line = locate(path)
            if len(value) != 1 or not isinstance(value["$file"], str):
                raise ManifestError("a $file reference is exactly {$file: PATH}", manifest, line)
            relative = value["$file"]
            try:
                target = inside_repository(root, base_dir, relative)
            except (OSError, ValueError):  # read_repository_file below says what is wrong
                target = None
            if target is None or target not in cache:
                target, raw = read_repository_file(
                    root,
                    base_dir,
                    relative,
                    what="$file",
                    manifest=manifest,
                    line=line,
                    limit=max_bytes,
                )
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ManifestError(
                        f"$file {relative!r} is not UTF-8 text", manifest, line
                    ) from None
                cache[target] = (text, sha256_hex(raw))
            text, digest = cache[target]
            files[target.relative_to(root.resolve()).as_posix()] = digest
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
                max_bytes=max_bytes,
                cache=cache,
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
                max_bytes=max_bytes,
                cache=cache,
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
