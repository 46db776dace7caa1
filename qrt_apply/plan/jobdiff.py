"""A job's recorded definition and the field changes between two of them.

Each job record in qrt.lock keeps ``definition``: what the job was run with, in canonical form::

    {"program_digest": SHA256,              # managed programs: the source's content digest
     "backend": NAME, "session": true | "batch",   # (the record's "program" names the program)
     "inputs": {PATH: LEAF},                # resolved inputs flattened (``flatten``), each $file
                                            # as its path: {"pubs[0].circuit.$file": "c.qasm"}
     "inputs_ref": "qrt-results/SHA.json",  # instead of inputs when they exceed INLINE_INPUTS_LIMIT
     "files": {PATH: SHA256},               # the bytes' digest of every $file
     "options": {PATH: LEAF}, "matrix": {VAR: VALUE}}   (empty ones are left out)

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
    "flatten",
    "inputs_digest",
    "job_definition",
]

INLINE_INPUTS_LIMIT = 4 * 1024  # bytes of canonical JSON; larger inputs go to qrt-results/
_ABSENT = object()
_FEW = 8  # differing places of two equal-length lists shown one by one


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


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``value`` as ``{path: leaf}``: ``{"pubs[0].shots": 100, "pubs[0].circuit.$file": "c.qasm"}``.
    A list of scalars (parameter values) is one leaf; an empty object or list is a leaf too. Shallow
    records keep qrt.lock quick to write (the JSON writer's cost grows with nesting) and are what a
    plan diffs by path anyway."""
    out: dict[str, Any] = {}

    def walk(item: Any, path: str) -> None:
        if isinstance(item, Mapping) and item:
            for key, sub in item.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(item, list) and any(isinstance(x, (Mapping, list)) for x in item):
            for index, sub in enumerate(item):
                walk(sub, f"{path}[{index}]")
        else:
            out[path] = item

    walk(value, prefix)
    return out


def job_definition(job: JobSpec) -> dict[str, Any]:
    """The canonical definition of ``job`` (inputs inline; see ``Lockfile.store_definition``)."""
    inputs: Any = dict(job.inputs)
    if job.files:
        paths = {digest: path for path, digest in sorted(job.files.items(), reverse=True)}
        inputs = _mark_files(inputs, paths)
    # The record itself says which program ("program"); defaults (no backend, no session) are
    # left out: every key here is paid for in each job of qrt.lock.
    definition: dict[str, Any] = {"inputs": flatten(inputs)}
    if job.backend is not None:
        definition["backend"] = job.backend
    if job.session:
        definition["session"] = job.session_key  # true, or "batch" for batch mode
    if job.program.kind == "managed":
        definition["program_digest"] = job.program_digest
    if job.files:
        definition["files"] = dict(sorted(job.files.items()))
    if job.options:
        definition["options"] = flatten(dict(job.options))
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
        "session": canonical_json(definition.get("session") or False),
    }


def _paths(field: str, old: Mapping[str, Any], new: Mapping[str, Any], out: list[Change]) -> None:
    """One change per path whose leaf differs; two lists of equal length that differ in a few
    places, one change per place."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        name = f"{field}.{key}" if key else field
        if a is not _ABSENT and b is not _ABSENT and canonical_json(a) == canonical_json(b):
            continue
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            places = [i for i in range(len(a)) if canonical_json(a[i]) != canonical_json(b[i])]
            if len(places) <= _FEW:
                out.extend(Change(f"{name}[{i}]", a[i], b[i]) for i in places)
                continue
        out.append(Change(name, None if a is _ABSENT else a, None if b is _ABSENT else b))


def definition_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Field changes from the recorded definition ``old`` to ``new``: program (when the caller
    puts the record's ``program`` in), backend, session, each changed input and option by path,
    each ``$file`` whose bytes changed, matrix values."""
    changes: list[Change] = []
    for key in ("program", "program_digest", "backend", "session"):
        a, b = old.get(key), new.get(key)
        if key == "session":
            a, b = a or False, b or False
        if canonical_json(a) != canonical_json(b):
            changes.append(Change("program content" if key == "program_digest" else key, a, b))
    if "inputs" in old and "inputs" in new:
        _paths("inputs", old["inputs"], new["inputs"], changes)
    elif inputs_digest(old) != inputs_digest(new):
        changes.append(Change("inputs", inputs_digest(old), inputs_digest(new)))
    old_files, new_files = old.get("files") or {}, new.get("files") or {}
    for path in sorted(set(old_files) | set(new_files)):
        if old_files.get(path) != new_files.get(path):
            changes.append(Change(f"$file {path}", old_files.get(path), new_files.get(path)))
    _paths("options", old.get("options") or {}, new.get("options") or {}, changes)
    _paths("matrix", old.get("matrix") or {}, new.get("matrix") or {}, changes)
    return changes
