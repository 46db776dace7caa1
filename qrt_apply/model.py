"""The desired state as frozen data: programs, batches, jobs, their addresses and digests.

Digests are SHA-256 over canonical JSON (sorted keys, no whitespace), so they are stable across
machines and Python versions. A Program has a *content* digest (its source bytes) and a *metadata*
digest (description, max_execution_time, spec); visibility is tracked on its own. A job's digest covers
what it computes: the program's content digest (or the built-in name / server id), the backend, the
resolved inputs (with the bytes of every ``$file``), the options and the session flag. A description
edit therefore updates the program without re-running its jobs; a source edit re-runs them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = [
    "BUILTIN_PROGRAMS",
    "RUNTIME_OPTION_KEYS",
    "BatchSpec",
    "DesiredState",
    "JobSpec",
    "MoveSpec",
    "ProgramRef",
    "ProgramSpec",
    "canonical_json",
    "sha256_hex",
    "submission_tag",
]

BUILTIN_PROGRAMS = ("sampler", "estimator")
# Prefix of a job's idempotency tag (the same value as ``runtime.base.SUBMIT_TAG_PREFIX``, kept
# here so the desired-state model imports nothing of the runtime layer).
SUBMIT_TAG_PREFIX = "qrt-submit:"
# Options a runtime consumes itself; every other option key is handed to the program.
RUNTIME_OPTION_KEYS = frozenset({"max_execution_time", "log_level"})


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def submission_tag(target: Mapping[str, Any], address: str, digest: str, run: int) -> str:
    """The idempotency tag of one submission: a pure function of where it goes (``target``), what
    it is (``address`` and job ``digest``) and which run of that address it is. Every retry and
    every later apply of the same run computes the same tag, and so does a second checkout of the
    same commit, so the runtime (or the lookup before a POST) can recognise the job as submitted;
    a deliberate rerun has a higher ``run`` and gets a new tag."""
    key = canonical_json(
        {"target": dict(target), "address": address, "digest": digest, "run": int(run)}
    )
    return SUBMIT_TAG_PREFIX + sha256_hex(key)


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    source_path: str  # repository-relative, POSIX separators
    source: str
    description: str
    max_execution_time: int
    visibility: str  # "private" | "public"
    spec: Mapping[str, Any]
    manifest: str  # repository-relative manifest path
    line: int
    prune: bool = True  # False: `--prune` never deletes it (recorded in qrt.lock, see apply)

    @property
    def address(self) -> str:
        return f"program.{self.name}"

    @property
    def content_digest(self) -> str:
        return content_digest(self.source)

    @property
    def metadata_digest(self) -> str:
        return metadata_digest(self.description, self.max_execution_time, self.spec)

    @property
    def is_public(self) -> bool:
        return self.visibility == "public"

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "max_execution_time": self.max_execution_time,
            "spec": dict(self.spec),
            "is_public": self.is_public,
        }


def content_digest(source: str) -> str:
    return sha256_hex(source)


def metadata_digest(description: str, max_execution_time: int, spec: Mapping[str, Any]) -> str:
    return sha256_hex(
        canonical_json(
            {
                "description": description,
                "max_execution_time": max_execution_time,
                "spec": spec,
            }
        )
    )


@dataclass(frozen=True)
class ProgramRef:
    """What a batch runs: a built-in primitive, a managed Program, or an unmanaged server id."""

    kind: str  # "builtin" | "managed" | "id"
    value: str

    def describe(self) -> str:
        return {"builtin": "built-in ", "managed": "program.", "id": "id "}[self.kind] + self.value


@dataclass(frozen=True)
class JobSpec:
    batch: str
    name: str
    program: ProgramRef
    backend: str | None
    inputs: Mapping[str, Any]
    options: Mapping[str, Any]
    session: bool
    tags: tuple[str, ...]
    files: Mapping[str, str]  # repository-relative path -> sha256 of bytes, for every $file used
    manifest: str
    line: int
    program_digest: str = ""  # content digest of a managed program; "" otherwise
    session_mode: str = "dedicated"  # "dedicated" (session: true) or "batch" (session: batch)
    matrix: Mapping[str, Any] = field(default_factory=dict)  # this job's matrix values

    @property
    def session_key(self) -> bool | str:
        """The session setting as the manifest gave it: False, True or "batch" (for digests)."""
        return "batch" if self.session and self.session_mode == "batch" else self.session

    @property
    def address(self) -> str:
        return f"job.{self.batch}/{self.name}"

    @property
    def runtime_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k in RUNTIME_OPTION_KEYS}

    @property
    def program_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in RUNTIME_OPTION_KEYS}

    def params(self) -> dict[str, Any]:
        """The inputs sent to the runtime: primitive options travel inside them as ``options``."""
        params = dict(self.inputs)
        if self.program.kind == "builtin" and self.program_options:
            merged = dict(self.program_options)
            merged.update(params.get("options") or {})
            params["options"] = merged
        return params

    @cached_property
    def digest(self) -> str:
        if self.program.kind == "managed":
            program: dict[str, str] = {"content": self.program_digest}
        else:
            program = {self.program.kind: self.program.value}
        return sha256_hex(
            canonical_json(
                {
                    "program": program,
                    "backend": self.backend,
                    "inputs": self.inputs,
                    "files": dict(self.files),
                    "options": self.options,
                    "session": self.session_key,
                }
            )
        )


@dataclass(frozen=True)
class BatchSpec:
    name: str
    program: ProgramRef
    backend: str | None
    session: bool
    tags: tuple[str, ...]
    jobs: tuple[JobSpec, ...]
    manifest: str
    line: int
    session_mode: str = "dedicated"
    # Largest drift of a rerun's result from the previous run's ({"tvd": ..., "z": ...}); not part
    # of any digest: changing it reruns nothing.
    result_tolerance: Mapping[str, float] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"batch.{self.name}"


@dataclass(frozen=True)
class MoveSpec:
    """A ``Moved`` manifest: the lockfile entries at ``source`` belong to ``dest`` now (a renamed
    program, batch or job), so the plan moves them instead of creating or running anew."""

    source: str  # program.NAME | batch.NAME | job.BATCH/JOB
    dest: str  # an address of the same kind, in the manifests
    manifest: str
    line: int


@dataclass(frozen=True)
class DesiredState:
    programs: Mapping[str, ProgramSpec] = field(default_factory=dict)
    batches: Mapping[str, BatchSpec] = field(default_factory=dict)
    moves: tuple[MoveSpec, ...] = ()

    def jobs(self) -> list[JobSpec]:
        return [job for batch in self.batches.values() for job in batch.jobs]
