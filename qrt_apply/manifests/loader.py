"""Load every manifest of a project into a validated ``DesiredState``.

Order of checks: YAML syntax, JSON Schema per document, unique names, program sources and ``$file``
paths (confined to the repository), matrix expansion, references between batches and programs, and
job inputs against the program's ``spec.parameters``. The first problem found is raised as a
``ManifestError`` with file and line; nothing is sent anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from qrt_apply.errors import ManifestError
from qrt_apply.manifests.inputs import check_builtin_inputs, check_program_inputs
from qrt_apply.manifests.resolve import (
    expand_matrix,
    inside_repository,
    resolve_files,
    substitute,
    unresolved_variables,
)
from qrt_apply.manifests.yamldocs import Document, load_documents
from qrt_apply.model import (
    BUILTIN_PROGRAMS,
    RUNTIME_OPTION_KEYS,
    BatchSpec,
    DesiredState,
    JobSpec,
    ProgramRef,
    ProgramSpec,
)

__all__ = ["find_manifest_files", "load_desired_state", "schema_for"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KINDS = {"Program": "program.schema.json", "JobBatch": "jobbatch.schema.json"}


@cache
def schema_for(kind: str) -> dict[str, Any]:
    text = resources.files("qrt_apply").joinpath("schemas", _KINDS[kind]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def find_manifest_files(manifests_dir: Path) -> list[Path]:
    if not manifests_dir.is_dir():
        raise ManifestError(f"no manifests directory at {manifests_dir}")
    files = sorted(
        p for p in manifests_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    return files


def _validate_schema(doc: Document) -> None:
    import jsonschema

    data = doc.data
    if not isinstance(data, dict):
        raise ManifestError("a manifest document must be a mapping", doc.path, doc.start_line)
    for key in ("apiVersion", "kind", "name"):
        if key not in data:
            raise ManifestError(f"missing required key {key!r}", doc.path, doc.start_line)
    if data["apiVersion"] != "qrt/v1":
        raise ManifestError(
            f"unsupported apiVersion {data['apiVersion']!r} (expected qrt/v1)",
            doc.path,
            doc.line_of(("apiVersion",)),
        )
    kind = data["kind"]
    if kind not in _KINDS:
        raise ManifestError(
            f"unknown kind {kind!r} (expected Program or JobBatch)",
            doc.path,
            doc.line_of(("kind",)),
        )
    validator = jsonschema.Draft202012Validator(schema_for(kind))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    path = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            path = (*path, extra[0])
            message = f"unknown key {extra[0]!r}"
    where = ".".join(str(p) for p in tuple(error.absolute_path)) or kind
    if error.validator != "additionalProperties":
        message = f"{where}: {message}"
    raise ManifestError(message, doc.path, doc.line_of(path))


def _program(doc: Document, root: Path, manifest_path: Path) -> ProgramSpec:
    data = doc.data
    source_rel = data["source"]
    target = inside_repository(root, manifest_path.parent, source_rel)
    line = doc.line_of(("source",))
    if target is None:
        raise ManifestError(
            f"source {source_rel!r} resolves outside the repository", doc.path, line
        )
    if not target.is_file():
        raise ManifestError(f"source {source_rel!r} does not exist", doc.path, line)
    source = target.read_text("utf-8")
    if "def main(" not in source:
        raise ManifestError(
            f"source {source_rel!r} defines no main(backend, user_messenger, **kwargs)",
            doc.path,
            line,
        )
    return ProgramSpec(
        name=data["name"],
        source_path=target.relative_to(root.resolve()).as_posix(),
        source=source,
        description=data.get("description", ""),
        max_execution_time=data["max_execution_time"],
        visibility=data.get("visibility", "private"),
        spec=data.get("spec", {}),
        manifest=doc.path,
        line=doc.start_line,
    )


def _program_ref(doc: Document, programs: Mapping[str, ProgramSpec]) -> ProgramRef:
    program = doc.data["program"]
    if isinstance(program, dict):
        return ProgramRef("id", program["id"])
    if program in BUILTIN_PROGRAMS:
        return ProgramRef("builtin", program)
    if program in programs:
        return ProgramRef("managed", program)
    raise ManifestError(
        f"program {program!r} is neither a built-in ({', '.join(BUILTIN_PROGRAMS)}) nor a Program "
        "in these manifests (use {id: ...} for an unmanaged program)",
        doc.path,
        doc.line_of(("program",)),
    )


def _batch(
    doc: Document, root: Path, manifest_path: Path, programs: Mapping[str, ProgramSpec]
) -> BatchSpec:
    data = doc.data
    ref = _program_ref(doc, programs)
    program = programs.get(ref.value) if ref.kind == "managed" else None
    batch_options = data.get("options", {})
    batch_tags = tuple(data.get("tags", ()))
    session = bool(data.get("session", False))
    backend = data.get("backend")
    jobs: list[JobSpec] = []
    seen: dict[str, int] = {}
    for index, job in enumerate(data["jobs"]):
        line = doc.line_of(("jobs", index))
        files: dict[str, str] = {}
        inputs = resolve_files(
            job.get("inputs", {}),
            root=root,
            base_dir=manifest_path.parent,
            manifest=doc.path,
            locate=doc.line_of,
            path=("jobs", index, "inputs"),
            files=files,
        )
        options = {**batch_options, **job.get("options", {})}
        for name, job_inputs, variables in expand_matrix(
            {**job, "inputs": inputs}, manifest=doc.path, line=line
        ):
            job_options = substitute(options, variables, used=set())
            leftover = unresolved_variables(job_options)
            if leftover:
                raise ManifestError(
                    f"job {name!r}: options use ${{{sorted(leftover)[0]}}}, which is not in its matrix",
                    doc.path,
                    line,
                )
            if not _NAME.fullmatch(name):
                raise ManifestError(
                    f"job name {name!r} is not a valid name ([a-z0-9][a-z0-9-]*)", doc.path, line
                )
            if name in seen:
                raise ManifestError(
                    f"job {name!r} is defined twice in batch {data['name']!r} "
                    f"(first at line {seen[name]})",
                    doc.path,
                    line,
                )
            seen[name] = line
            if program is not None:
                extras = sorted(set(job_options) - RUNTIME_OPTION_KEYS)
                if extras:
                    extra = extras[0]
                    raise ManifestError(
                        f"job {name!r}: option {extra!r} is not a runtime option; uploaded programs "
                        "take their parameters under inputs",
                        doc.path,
                        line,
                    )
                check_program_inputs(program, job_inputs, manifest=doc.path, line=line, job=name)
            elif ref.kind == "builtin":
                check_builtin_inputs(ref.value, job_inputs, manifest=doc.path, line=line, job=name)
            jobs.append(
                JobSpec(
                    batch=data["name"],
                    name=name,
                    program=ref,
                    backend=backend,
                    inputs=job_inputs,
                    options=job_options,
                    session=session,
                    tags=tuple(dict.fromkeys(batch_tags + tuple(job.get("tags", ())))),
                    files=dict(files),
                    manifest=doc.path,
                    line=line,
                    program_digest=program.content_digest if program is not None else "",
                )
            )
    return BatchSpec(
        name=data["name"],
        program=ref,
        backend=backend,
        session=session,
        tags=batch_tags,
        jobs=tuple(jobs),
        manifest=doc.path,
        line=doc.start_line,
    )


def load_desired_state(root: Path, manifests_dir: Path) -> DesiredState:
    """Read, validate and resolve every manifest under ``manifests_dir``."""
    root = root.resolve()
    documents: list[tuple[Document, Path]] = []
    for file in find_manifest_files(manifests_dir):
        rel = (
            file.resolve().relative_to(root).as_posix()
            if file.resolve().is_relative_to(root)
            else str(file)
        )
        try:
            text = file.read_text("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("not UTF-8 text", rel) from None
        for doc in load_documents(text, rel):
            _validate_schema(doc)
            documents.append((doc, file))

    seen: dict[tuple[str, str], Document] = {}
    for doc, _ in documents:
        key = (doc.data["kind"], doc.data["name"])
        if key in seen:
            first = seen[key]
            raise ManifestError(
                f"{key[0]} {key[1]!r} is defined twice (first at {first.path}:{first.start_line})",
                doc.path,
                doc.line_of(("name",)),
            )
        seen[key] = doc

    programs: dict[str, ProgramSpec] = {}
    for doc, file in documents:
        if doc.data["kind"] == "Program":
            programs[doc.data["name"]] = _program(doc, root, file)
    batches: dict[str, BatchSpec] = {}
    for doc, file in documents:
        if doc.data["kind"] == "JobBatch":
            batches[doc.data["name"]] = _batch(doc, root, file, programs)
    return DesiredState(
        programs=dict(sorted(programs.items())), batches=dict(sorted(batches.items()))
    )
