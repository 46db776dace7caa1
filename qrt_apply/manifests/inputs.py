"""Check job inputs before anything is sent: against a Program's ``spec.parameters``, or against
the shape the built-in primitives accept (V2 PUBs, or the older V1 lists)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from qrt_apply.errors import ManifestError
from qrt_apply.model import ProgramSpec

__all__ = ["check_builtin_inputs", "check_program_inputs", "program_validator"]


def program_validator(program: ProgramSpec) -> Any:
    """The JSON Schema validator of ``program``'s ``spec.parameters`` (None when it has none).

    Building one checks the schema and compiles its lookups; the loader builds it once per program
    and reuses it for every job, matrix jobs included."""
    import jsonschema

    schema = program.spec.get("parameters")
    if not schema:
        return None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ManifestError(
            f"program {program.name!r}: spec.parameters is not a valid JSON Schema: {exc.message}",
            program.manifest,
            program.line,
        ) from None
    return jsonschema.Draft202012Validator(schema)


def check_program_inputs(
    program: ProgramSpec,
    inputs: Mapping[str, Any],
    *,
    manifest: str,
    line: int,
    job: str,
    validator: Any = None,
) -> None:
    """Check ``inputs`` against the program's parameters, with ``validator`` from
    ``program_validator(program)`` when the caller has one."""
    import jsonschema

    if validator is None:
        validator = program_validator(program)
        if validator is None:
            return
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(inputs)))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        where = f" at inputs.{where}" if where else ""
        raise ManifestError(
            f"job {job!r}: inputs do not match program {program.name!r} parameters{where}: "
            f"{error.message}",
            manifest,
            line,
        )


@lru_cache(maxsize=256)
def _qasm_head(circuit: str) -> str:
    """The first line that is not blank or a comment. Cached: a ``$file`` circuit is one string
    shared by every job using it, and splitting a big one per job would cost jobs x size."""
    lines = (ln.strip() for ln in circuit.splitlines())
    return next((ln for ln in lines if ln and not ln.startswith("//")), "")


def _check_circuit(circuit: Any, where: str, manifest: str, line: int) -> None:
    if isinstance(circuit, str):
        # The runtime reads OpenQASM only with its version header; comments may come before it.
        if not _qasm_head(circuit).startswith("OPENQASM"):
            raise ManifestError(
                f"{where}: a circuit is OpenQASM text, {{$file: PATH}} or {{library: NAME, ...}}",
                manifest,
                line,
            )
        return
    if isinstance(circuit, Mapping) and isinstance(circuit.get("library"), str):
        return
    raise ManifestError(
        f"{where}: a circuit is OpenQASM text, {{$file: PATH}} or {{library: NAME, ...}}",
        manifest,
        line,
    )


def check_builtin_inputs(
    program: str, inputs: Mapping[str, Any], *, manifest: str, line: int, job: str
) -> None:
    if "pubs" in inputs:
        pubs = inputs["pubs"]
        if not isinstance(pubs, list) or not pubs:
            raise ManifestError(
                f"job {job!r}: inputs.pubs must be a non-empty list", manifest, line
            )
        for index, pub in enumerate(pubs):
            where = f"job {job!r}: inputs.pubs[{index}]"
            if not isinstance(pub, Mapping) or "circuit" not in pub:
                raise ManifestError(f"{where} must be a mapping with a circuit", manifest, line)
            unknown = set(pub) - {
                "circuit",
                "observables",
                "parameter_values",
                "shots",
                "precision",
            }
            if unknown:
                raise ManifestError(f"{where}: unknown key {sorted(unknown)[0]!r}", manifest, line)
            _check_circuit(pub["circuit"], where, manifest, line)
            if program == "estimator" and "observables" not in pub:
                raise ManifestError(f"{where}: the estimator needs observables", manifest, line)
            if program == "sampler" and "observables" in pub:
                raise ManifestError(f"{where}: the sampler takes no observables", manifest, line)
        return
    if "circuits" in inputs:
        circuits = inputs["circuits"]
        if not isinstance(circuits, list) or not circuits:
            raise ManifestError(
                f"job {job!r}: inputs.circuits must be a non-empty list", manifest, line
            )
        for index, circuit in enumerate(circuits):
            _check_circuit(circuit, f"job {job!r}: inputs.circuits[{index}]", manifest, line)
        if program == "estimator" and "observables" not in inputs:
            raise ManifestError(f"job {job!r}: the estimator needs observables", manifest, line)
        return
    raise ManifestError(
        f"job {job!r}: {program} inputs need pubs (V2) or circuits (V1)", manifest, line
    )
