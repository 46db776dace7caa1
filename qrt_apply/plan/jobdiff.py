"""A job's recorded definition and the field changes between two of them.

Each job record in qrt.lock keeps ``definition``: what the job was run with, in canonical form::

    {"program": "built-in sampler" | "program.NAME" | "id ID",
     "program_digest": SHA256,              # managed programs: the source's content digest
     "backend": NAME, "session": BOOL,
     "inputs": {...},                       # resolved inputs, each $file written {"$file": PATH}
     "inputs_ref": "qrt-results/SHA.json",  # instead of inputs when they exceed INLINE_INPUTS_LIMIT
     "files": {PATH: SHA256},               # the bytes' digest of every $file
     "options": {...}, "matrix": {VAR: VALUE}}   (empty ones are left out)

so that a plan can say what a rerun changes: ``inputs.pubs[0].shots: 100 → 200``, ``$file
circuits/bell.qasm: 1a2b… → 9f8e…``, ``backend``, ``options.default_shots``, ``program``. Large
inputs are stored by content beside the lockfile, as large results are, and show as a digest
change. A record written before definitions were kept has none; its plan says only which parts
changed (``inputs_digest_parts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrt_apply.model import JobSpec, canonical_json, sha256_hex
from qrt_apply.plan.model import Change

__all__ = [
    "INLINE_INPUTS_LIMIT",
    "definition_changes",
    "definition_parts",
    "inputs_digest",
    "job_definition",
]

INLINE_INPUTS_LIMIT = 4 * 1024  # bytes of canonical JSON; larger inputs go to qrt-results/
_ABSENT = object()


def _mark_files(value: Any, paths: Mapping[str, str]) -> Any:
    """``value`` with each string that is the text of a ``$file`` (by digest) as ``{"$file": P}``."""
    if isinstance(value, str):
        path = paths.get(sha256_hex(value)) if len(value) > 0 else None
        return {"$file": path} if path is not None else value
    if isinstance(value, Mapping):
        return {key: _mark_files(item, paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_mark_files(item, paths) for item in value]
    return value


def job_definition(job: JobSpec) -> dict[str, Any]:
    """The canonical definition of ``job`` (inputs inline; see ``Lockfile.store_definition``)."""
    inputs: Any = dict(job.inputs)
    if job.files:
        paths = {digest: path for path, digest in sorted(job.files.items(), reverse=True)}
        inputs = _mark_files(inputs, paths)
    definition: dict[str, Any] = {
        "program": job.program.describe(),
        "backend": job.backend,
        "session": job.session,
        "inputs": inputs,
    }
    if job.program.kind == "managed":
        definition["program_digest"] = job.program_digest
    if job.files:
        definition["files"] = dict(sorted(job.files.items()))
    if job.options:
        definition["options"] = dict(job.options)
    if job.matrix:
        definition["matrix"] = dict(job.matrix)
    return definition


def inputs_digest(definition: Mapping[str, Any]) -> str | None:
    """The digest of a definition's inputs, inline or stored by reference."""
    ref = definition.get("inputs_ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1].removesuffix(".json")
    if "inputs" in definition:
        return sha256_hex(canonical_json(definition["inputs"]))
    return None


def definition_parts(definition: Mapping[str, Any]) -> dict[str, str]:
    """A definition's parts by name (as ``job_digest_parts`` names them), each as comparable text."""
    return {
        "program": canonical_json([definition.get("program"), definition.get("program_digest")]),
        "backend": canonical_json(definition.get("backend")),
        "inputs": str(inputs_digest(definition)),
        "files": canonical_json(definition.get("files") or {}),
        "options": canonical_json(definition.get("options") or {}),
        "session": canonical_json(definition.get("session")),
    }


def _nested(field: str, old: Any, new: Any, out: list[Change]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _nested(f"{field}.{key}", old.get(key, _ABSENT), new.get(key, _ABSENT), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else _ABSENT
            b = new[i] if i < len(new) else _ABSENT
            _nested(f"{field}[{i}]", a, b, out)
        return
    if old is _ABSENT or new is _ABSENT or canonical_json(old) != canonical_json(new):
        out.append(Change(field, None if old is _ABSENT else old, None if new is _ABSENT else new))


def definition_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Field changes from the recorded definition ``old`` to ``new``: program, backend, session,
    each changed input and option by path, each ``$file`` whose bytes changed, matrix values."""
    changes: list[Change] = []
    for key in ("program", "program_digest", "backend", "session"):
        if canonical_json(old.get(key)) != canonical_json(new.get(key)):
            name = "program content" if key == "program_digest" else key
            changes.append(Change(name, old.get(key), new.get(key)))
    if "inputs" in old and "inputs" in new:
        _nested("inputs", old["inputs"], new["inputs"], changes)
    elif inputs_digest(old) != inputs_digest(new):
        changes.append(Change("inputs", inputs_digest(old), inputs_digest(new)))
    old_files, new_files = old.get("files") or {}, new.get("files") or {}
    for path in sorted(set(old_files) | set(new_files)):
        if old_files.get(path) != new_files.get(path):
            changes.append(Change(f"$file {path}", old_files.get(path), new_files.get(path)))
    _nested("options", old.get("options") or {}, new.get("options") or {}, changes)
    _nested("matrix", old.get("matrix") or {}, new.get("matrix") or {}, changes)
    return changes
