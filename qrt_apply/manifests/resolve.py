"""Resolve ``{$file: PATH}`` references in job definitions (matrices: ``matrix.py``).

Files are read bounded (size checked with stat first, then at most limit+1 bytes read) and once per
load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qrt_apply.errors import ManifestError
from qrt_apply.manifests.yamldocs import JsonPath
from qrt_apply.model import sha256_hex

__all__ = [
    "inside_repository",
    "read_bounded",
    "read_repository_file",
    "resolve_files",
]

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
