"""Load every manifest of a project into a validated ``DesiredState``.

Every read is bounded by the project's ``Limits`` (qrt.yaml ``limits:``): file sizes, YAML depth and
nodes, matrix size and the number of jobs, so hostile input ends in one message, not in exhausted
memory. Order of checks: YAML syntax, JSON Schema per document, unique names, program sources and ``$file``
paths (confined to the repository), matrix expansion, references between batches and programs, and
job inputs against the program's ``spec.parameters``. The first problem found is raised as a
``ManifestError`` with file and line; nothing is sent anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from qrt_apply.errors import ManifestError
from qrt_apply.manifests.checkcache import CheckCache
from qrt_apply.manifests.inputs import (
    check_builtin_inputs,
    check_program_inputs,
    program_validator,
)
from qrt_apply.manifests.matrix import expand_matrix, substitute, unresolved_variables
from qrt_apply.manifests.moved import moves_from
from qrt_apply.manifests.pubs import check_primitive_inputs
from qrt_apply.manifests.resolve import read_bounded, read_repository_file, resolve_files
from qrt_apply.manifests.yamldocs import Document, YamlLimits, load_documents
from qrt_apply.model import (
    BUILTIN_PROGRAMS,
    RUNTIME_OPTION_KEYS,
    BatchSpec,
    DesiredState,
    JobSpec,
    ProgramRef,
    ProgramSpec,
)
from qrt_apply.project import Limits, load_project
from qrt_apply.schema import load_schema, schema_validator

__all__ = ["find_manifest_files", "load_desired_state", "schema_for"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KINDS = {"Program": "program", "JobBatch": "jobbatch", "Moved": "moved"}


def schema_for(kind: str) -> dict[str, Any]:
    return load_schema(_KINDS[kind])


def _schema_validator(kind: str) -> Any:
    return schema_validator(_KINDS[kind])


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
        if key not in data and not (key == "name" and data.get("kind") == "Moved"):
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
            f"unknown kind {kind!r} (expected Program, JobBatch or Moved)",
            doc.path,
            doc.line_of(("kind",)),
        )
    error = jsonschema.exceptions.best_match(_schema_validator(kind).iter_errors(data))
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


def _program(doc: Document, root: Path, manifest_path: Path, limits: Limits) -> ProgramSpec:
    data = doc.data
    source_rel = data["source"]
    line = doc.line_of(("source",))
    target, raw = read_repository_file(
        root,
        manifest_path.parent,
        source_rel,
        what="source",
        manifest=doc.path,
        line=line,
        limit=limits.max_file_bytes,
    )
    try:
        # Universal newlines, as Path.read_text gives: the source and its digest stay as they were.
        source = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        raise ManifestError(f"source {source_rel!r} is not UTF-8 text", doc.path, line) from None
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
        prune=data.get("prune", True),
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


class _Budget:
    """What one load shares across batches: the limits, the jobs made so far, the files read
    and the validators built (one per program)."""

    def __init__(self, limits: Limits, checks: CheckCache) -> None:
        self.limits = limits
        self.checks = checks
        self.jobs = 0
        self.files: dict[Path, tuple[str, str]] = {}
        self.validators: dict[str, Any] = {}
        self._names: dict[str, str] = {}

    def file_names(self, root: Path) -> dict[str, str]:
        """The text of every ``$file`` read so far -> its repository path, for messages."""
        if len(self._names) != len(self.files):
            self._names = {
                text: path.relative_to(root).as_posix() for path, (text, _) in self.files.items()
            }
        return self._names

    def validator(self, program: ProgramSpec) -> Any:
        if program.name not in self.validators:
            self.validators[program.name] = program_validator(program)
        return self.validators[program.name]


def _input_line(doc: Document, index: int, path: tuple[str | int, ...]) -> int:
    """The line of ``path`` inside the inputs of job entry ``index``."""
    return doc.line_of(("jobs", index, "inputs", *path))


def _batch(
    doc: Document,
    root: Path,
    manifest_path: Path,
    programs: Mapping[str, ProgramSpec],
    budget: _Budget,
) -> BatchSpec:
    data = doc.data
    limits = budget.limits
    ref = _program_ref(doc, programs)
    program = programs.get(ref.value) if ref.kind == "managed" else None
    validator = budget.validator(program) if program is not None else None
    batch_options = data.get("options", {})
    batch_tags = tuple(data.get("tags", ()))
    # session: true is a dedicated session, session: batch a batch one (IBM Quantum Platform's two
    # modes; runtimes with one kind of session treat both alike).
    session = bool(data.get("session", False))
    session_mode = "batch" if data.get("session") == "batch" else "dedicated"
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
            max_bytes=limits.max_file_bytes,
            cache=budget.files,
        )
        options = {**batch_options, **job.get("options", {})}
        expanded = expand_matrix(
            {**job, "inputs": inputs},
            manifest=doc.path,
            line=line,
            max_jobs=limits.max_matrix_jobs,
            max_bytes=limits.max_expanded_bytes,
        )
        budget.jobs += len(expanded)
        if budget.jobs > limits.max_jobs:
            raise ManifestError(
                f"job {job['name']!r}: the manifests make more than {limits.max_jobs:,} jobs "
                "(qrt.yaml limits.max_jobs)",
                doc.path,
                line,
            )
        for name, job_inputs, variables in expanded:
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
                    f"job name {name!r} is not a valid name ([a-z0-9][a-z0-9-]*, at most 63 "
                    "characters)",
                    doc.path,
                    line,
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
                check_program_inputs(
                    program,
                    job_inputs,
                    manifest=doc.path,
                    line=line,
                    job=name,
                    validator=validator,
                )
            elif ref.kind == "builtin":
                check_builtin_inputs(ref.value, job_inputs, manifest=doc.path, line=line, job=name)
                check_primitive_inputs(
                    ref.value,
                    job_inputs,
                    job_options,
                    manifest=doc.path,
                    job=name,
                    line=line,
                    locate=partial(_input_line, doc, index),
                    file_names=budget.file_names(root),
                    cache=budget.checks,
                )
            jobs.append(
                JobSpec(
                    batch=data["name"],
                    name=name,
                    program=ref,
                    backend=backend,
                    inputs=job_inputs,
                    options=job_options,
                    session=session,
                    session_mode=session_mode,
                    tags=tuple(dict.fromkeys(batch_tags + tuple(job.get("tags", ())))),
                    files=dict(files),
                    manifest=doc.path,
                    line=line,
                    program_digest=program.content_digest if program is not None else "",
                    matrix=variables,
                )
            )
    return BatchSpec(
        name=data["name"],
        program=ref,
        backend=backend,
        session=session,
        session_mode=session_mode,
        tags=batch_tags,
        jobs=tuple(jobs),
        manifest=doc.path,
        line=doc.start_line,
        result_tolerance=dict(data.get("result_tolerance", {})),
    )


def load_desired_state(
    root: Path, manifests_dir: Path, limits: Limits | None = None
) -> DesiredState:
    """Read, validate and resolve every manifest under ``manifests_dir``.

    ``limits`` default to those of ``root``'s qrt.yaml (the commands pass only the paths). What
    passed the deep input checks is remembered in the project's ``.qrt/checked.json``."""
    root = root.resolve()
    project = load_project(root)
    if limits is None:
        limits = project.limits
    yaml_limits = YamlLimits(max_depth=limits.max_depth, max_nodes=limits.max_yaml_nodes)
    budget = _Budget(limits, CheckCache(project.state_dir / "checked.json"))
    documents: list[tuple[Document, Path]] = []
    for file in find_manifest_files(manifests_dir):
        rel = (
            file.resolve().relative_to(root).as_posix()
            if file.resolve().is_relative_to(root)
            else str(file)
        )
        raw = read_bounded(file, limits.max_manifest_bytes, "the manifest", rel, None)
        try:
            # Universal newlines, as Path.read_text gave (a lone \r ends a line for YAML too).
            text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            raise ManifestError("not UTF-8 text", rel) from None
        for doc in load_documents(text, rel, limits=yaml_limits):
            _validate_schema(doc)
            documents.append((doc, file))

    seen: dict[tuple[str, str], Document] = {}
    for doc, _ in documents:
        field = "from" if doc.data["kind"] == "Moved" else "name"  # one move per old address
        key = (doc.data["kind"], doc.data[field])
        if key in seen:
            first = seen[key]
            raise ManifestError(
                f"{key[0]} {key[1]!r} is defined twice (first at {first.path}:{first.start_line})",
                doc.path,
                doc.line_of((field,)),
            )
        seen[key] = doc

    programs: dict[str, ProgramSpec] = {}
    for doc, file in documents:
        if doc.data["kind"] == "Program":
            programs[doc.data["name"]] = _program(doc, root, file, limits)
    batches: dict[str, BatchSpec] = {}
    for doc, file in documents:
        if doc.data["kind"] == "JobBatch":
            batches[doc.data["name"]] = _batch(doc, root, file, programs, budget)
    moved = [doc for doc, _ in documents if doc.data["kind"] == "Moved"]
    moves = moves_from(moved, programs, batches)
    budget.checks.save()  # only once everything passed
    return DesiredState(
        programs=dict(sorted(programs.items())),
        batches=dict(sorted(batches.items())),
        moves=moves,
    )
