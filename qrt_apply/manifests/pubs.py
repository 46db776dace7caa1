"""Deep checks of the built-in primitives' job inputs, before anything is sent.

Offline (``qrt validate``, and so plan and apply): every circuit is parsed as the runtime would
parse it (``engine/circuits.py``: OpenQASM 2/3 syntax, ``{library: ...}`` names and arguments),
a sampler's circuit must measure something, observables must act on as many qubits as their
circuit has, parameter values must give one value per circuit parameter, shots must be whole
numbers from 1 to ``MAX_SHOTS`` and precisions numbers from 0 to 1.

At plan, where the runtime's backends are known (:func:`check_backends`): a circuit no wider than
its backend, shots within the backend's ``max_shots`` where the runtime enforces one, and
precision 0 (exact) only on a noiseless simulator.

Every error is a ``ManifestError`` naming the manifest, the line of the field, the job and the
field (``job 'bell' inputs.pubs[0].circuit: ...``).

Cost: qiskit is imported only when a circuit is checked, so manifests without built-in jobs cost
nothing here. A circuit (by its text or library arguments) is parsed once per process, however
many jobs share it. What passed is remembered in ``.qrt/checked.json`` (``checkcache.py``; local,
git-ignored, and only once some command has made ``.qrt/``): the digest of each job's checked
inputs and each circuit's width, under the versions of qrt and qiskit that checked them. A later
validate or plan of unchanged jobs imports no qiskit at all; editing a circuit costs one import
and one parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qrt_apply.errors import ManifestError, RuntimeApiError
from qrt_apply.manifests.checkcache import WIDTHS, CheckCache, circuit_digest
from qrt_apply.model import JobSpec, canonical_json, sha256_hex
from qrt_apply.runtime.base import BackendInfo

__all__ = [
    "MAX_SHOTS",
    "OFFLINE_MAX_QUBITS",
    "check_backends",
    "check_primitive_inputs",
]

# IBM's job limit is 10 million executions (circuits x shots) for a sampler job, so no runtime
# takes more shots than that in one PUB; a backend's own limit is checked at plan.
MAX_SHOTS = 10_000_000
# Widest circuit built offline (library circuits are built to be counted); the backend's width is
# checked at plan.
OFFLINE_MAX_QUBITS = 2_000

_PUB_KEYS = {
    "sampler": ("circuit", "parameter_values", "shots"),
    "estimator": ("circuit", "observables", "parameter_values", "precision"),
}

Locate = Callable[[tuple[str | int, ...]], int]


@dataclass(frozen=True)
class _Parsed:
    circuit: Any  # a QuantumCircuit
    num_qubits: int
    measured: bool


_CIRCUITS: dict[str, _Parsed | RuntimeApiError] = {}


def _circuit(value: Any, where: str) -> _Parsed:
    """``value`` parsed (once per process per distinct value); the runtime's 400 otherwise."""
    key = value if isinstance(value, str) else canonical_json(value)
    found = _CIRCUITS.get(key)
    if found is None:
        from qrt_apply.engine.circuits import parse_circuit

        try:
            circuit = parse_circuit(value, max_qubits=OFFLINE_MAX_QUBITS, where="\0")
            found = _Parsed(circuit, circuit.num_qubits, bool(circuit.num_clbits))
            WIDTHS[circuit_digest(value)] = found.num_qubits
        except RuntimeApiError as exc:
            found = exc
        _CIRCUITS[key] = found
    if isinstance(found, RuntimeApiError):
        raise RuntimeApiError(found.message.replace("\0", where), status=400)
    return found


def _width(value: Any, where: str) -> int:
    known = WIDTHS.get(circuit_digest(value))
    return known if known is not None else _circuit(value, where).num_qubits


class _Job:
    """Where one job's inputs are: for messages that name file, line, job and field."""

    def __init__(
        self, manifest: str, job: str, line: int, locate: Locate, file_names: Mapping[str, str]
    ) -> None:
        self.manifest = manifest
        self.job = job
        self.line = line
        self.locate = locate
        self.file_names = file_names

    def field(self, path: Sequence[str | int]) -> str:
        text = "inputs"
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return f"job {self.job!r} {text}"

    def error(self, path: Sequence[str | int], message: str) -> ManifestError:
        return ManifestError(message, self.manifest, self.locate(tuple(path)))

    def fail(self, path: Sequence[str | int], message: str) -> ManifestError:
        return self.error(path, f"{self.field(path)}: {message}")

    def parse(self, value: Any, path: Sequence[str | int]) -> _Parsed:
        try:
            return _circuit(value, self.field(path))
        except RuntimeApiError as exc:
            message = exc.message
            source = self.file_names.get(value) if isinstance(value, str) else None
            if source is not None:  # a $file: its name, not the parser's "<input>"
                message = message.replace("<input>", source)
                if source not in message:
                    message += f" (in {source})"
            raise self.error(path, message) from None


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _shots_problem(value: Any) -> str | None:
    if not _whole(value, 1, MAX_SHOTS):
        return f"shots must be a whole number from 1 to {MAX_SHOTS:,}, not {value!r}"
    return None


def _precision_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return f"precision must be a number from 0 to 1, not {value!r}"
    return None


def _check_shots(at: _Job, value: Any, path: Sequence[str | int]) -> None:
    problem = _shots_problem(value)
    if problem is not None:
        raise at.fail(path, problem)


def _check_precision(at: _Job, value: Any, path: Sequence[str | int]) -> None:
    problem = _precision_problem(value)
    if problem is not None:
        raise at.fail(path, problem)


def _check_options(at: _Job, options: Mapping[str, Any]) -> None:
    for key, check in (
        ("default_shots", _shots_problem),
        ("default_precision", _precision_problem),
    ):
        problem = check(options[key]) if key in options else None
        if problem is not None:
            # options merge the batch's and the job's: the job's line
            raise ManifestError(f"job {at.job!r} options.{key}: {problem}", at.manifest, at.line)


def _check_pub(program: str, at: _Job, pub: Mapping[str, Any], path: tuple[Any, ...]) -> None:
    from qrt_apply.engine.circuits import parse_observables, parse_parameter_values

    wrong = sorted(set(pub) - set(_PUB_KEYS[program]))
    if wrong:
        raise at.fail(
            (*path, wrong[0]),
            f"the {program} takes no {wrong[0]!r} in a PUB (it takes "
            f"{', '.join(_PUB_KEYS[program])})",
        )
    parsed = at.parse(pub["circuit"], (*path, "circuit"))
    if program == "sampler" and not parsed.measured:
        raise at.fail(
            (*path, "circuit"),
            "the circuit measures nothing; add measurements (or measure_all: true)",
        )
    if "observables" in pub:
        where = at.field((*path, "observables"))
        try:
            parse_observables(pub["observables"], num_qubits=parsed.num_qubits, where=where)
        except RuntimeApiError as exc:
            raise at.error((*path, "observables"), exc.message) from None
    where = at.field((*path, "parameter_values"))
    try:
        parse_parameter_values(pub.get("parameter_values"), parsed.circuit, where=where)
    except RuntimeApiError as exc:
        raise at.error((*path, "parameter_values"), exc.message) from None
    if "shots" in pub:
        _check_shots(at, pub["shots"], (*path, "shots"))
    if "precision" in pub:
        _check_precision(at, pub["precision"], (*path, "precision"))


def check_primitive_inputs(
    program: str,
    inputs: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    manifest: str,
    job: str,
    line: int,
    locate: Locate,
    file_names: Mapping[str, str],
    cache: CheckCache | None = None,
) -> None:
    """Check a built-in job's ``inputs`` and primitive ``options`` as the runtime would.

    ``line`` is the job entry's, ``locate`` gives the line of a path inside the job's inputs;
    ``file_names`` maps the text of
    each ``$file`` to its repository path. The shape was checked before (``inputs.py``). Inputs
    ``cache`` says were checked are not checked again; those that pass are added to it."""
    key = ""
    if cache is not None:
        shots = options.get("default_shots")
        precision = options.get("default_precision")
        key = sha256_hex(canonical_json([program, inputs, shots, precision]))
        circuits = [circuit_digest(c) for _, c in _circuits_in(inputs)]
        if cache.checked(key, circuits):
            return
    _check_inputs(program, inputs, options, _Job(manifest, job, line, locate, file_names))
    if cache is not None:
        cache.add(key)


def _check_inputs(
    program: str, inputs: Mapping[str, Any], options: Mapping[str, Any], at: _Job
) -> None:
    _check_options(at, options)
    if "shots" in inputs:
        _check_shots(at, inputs["shots"], ("shots",))
    if "precision" in inputs:
        _check_precision(at, inputs["precision"], ("precision",))
    if "pubs" in inputs:
        for index, pub in enumerate(inputs["pubs"]):
            _check_pub(program, at, pub, ("pubs", index))
        return
    run_options = inputs.get("run_options")
    if isinstance(run_options, Mapping) and "shots" in run_options:
        _check_shots(at, run_options["shots"], ("run_options", "shots"))
    _check_v1(program, at, inputs)


def _indices(at: _Job, inputs: Mapping[str, Any], key: str, count: int, default: int) -> list[int]:
    value = inputs.get(key)
    if value is None:
        return list(range(default))
    if not isinstance(value, list) or not all(_whole(i, 0, count - 1) for i in value):
        raise at.fail((key,), f"must be a list of indices from 0 to {count - 1}")
    return value


def _check_v1(program: str, at: _Job, inputs: Mapping[str, Any]) -> None:
    """The V1 lists, as ``engine/primitives_v1.py`` reads them: circuits, circuit_indices,
    parameter_values (one list per circuit index), observables and observable_indices."""
    parsed = [at.parse(c, ("circuits", i)) for i, c in enumerate(inputs["circuits"])]
    chosen = _indices(at, inputs, "circuit_indices", len(parsed), len(parsed))
    values = inputs.get("parameter_values")
    if values is not None and (not isinstance(values, list) or len(values) != len(chosen)):
        raise at.fail(("parameter_values",), "needs one list of values per circuit index")
    for k, ci in enumerate(chosen):
        given = values[k] if values is not None else []
        wanted = parsed[ci].circuit.num_parameters
        if not isinstance(given, list) or len(given) != wanted:
            count = len(given) if isinstance(given, list) else "no list of"
            raise at.fail(
                ("parameter_values", k) if values is not None else ("circuits", ci),
                f"circuits[{ci}] has {wanted} parameters, got {count} values",
            )
        if program == "sampler" and not parsed[ci].measured:
            raise at.fail(
                ("circuits", ci),
                "the circuit measures nothing; add measurements (or measure_all: true)",
            )
    if program != "estimator":
        return
    from qrt_apply.engine.circuits import parse_observables

    observables = inputs["observables"]
    if not isinstance(observables, list) or not observables:
        raise at.fail(("observables",), "the estimator needs a non-empty list of observables")
    chosen_obs = _indices(at, inputs, "observable_indices", len(observables), len(chosen))
    if len(chosen_obs) != len(chosen):
        raise at.fail(("observable_indices",), "needs one entry per circuit index")
    for ci, oi in zip(chosen, chosen_obs, strict=True):
        where = at.field(("observables", oi))
        try:
            parse_observables(observables[oi], num_qubits=parsed[ci].num_qubits, where=where)
        except RuntimeApiError as exc:
            raise at.error(("observables", oi), exc.message) from None


def _circuits_in(inputs: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], Any]]:
    """(path, circuit) of every circuit of checked built-in inputs."""
    if isinstance(inputs.get("pubs"), list):
        return [(("pubs", i, "circuit"), p["circuit"]) for i, p in enumerate(inputs["pubs"])]
    return [(("circuits", i), c) for i, c in enumerate(inputs.get("circuits") or ())]


def _shots_of(job: JobSpec) -> list[tuple[str, Any]]:
    """Every shot count the job states, with the field that states it."""
    found = [(f"options.{k}", v) for k, v in job.options.items() if k == "default_shots"]
    inputs = job.inputs
    if "shots" in inputs:
        found.append(("inputs.shots", inputs["shots"]))
    for index, pub in enumerate(inputs.get("pubs") or ()):
        if isinstance(pub, Mapping) and "shots" in pub:
            found.append((f"inputs.pubs[{index}].shots", pub["shots"]))
    run_options = inputs.get("run_options")
    if isinstance(run_options, Mapping) and "shots" in run_options:
        found.append(("inputs.run_options.shots", run_options["shots"]))
    return found


def _exact(job: JobSpec) -> str | None:
    """The field asking for precision 0, if one does."""
    if job.options.get("default_precision") == 0:
        return "options.default_precision"
    if job.inputs.get("precision") == 0:
        return "inputs.precision"
    for index, pub in enumerate(job.inputs.get("pubs") or ()):
        if isinstance(pub, Mapping) and pub.get("precision") == 0:
            return f"inputs.pubs[{index}].precision"
    return None


def check_backends(jobs: Sequence[JobSpec], backends: Mapping[str, BackendInfo]) -> None:
    """Check each built-in job against the backend it names, as the runtime describes it."""
    for job in jobs:
        info = backends.get(job.backend) if job.backend is not None else None
        if info is None or job.program.kind != "builtin":
            continue

        def fail(field: str, message: str, job: JobSpec = job) -> ManifestError:
            return ManifestError(f"job {job.name!r} {field}: {message}", job.manifest, job.line)

        for path, circuit in _circuits_in(job.inputs):
            field = "inputs" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
            width = _width(circuit, field)
            if info.num_qubits and width > info.num_qubits:
                raise fail(
                    field,
                    f"the circuit has {width} qubits; backend {info.name!r} has {info.num_qubits}",
                )
        if info.max_shots:
            for field, shots in _shots_of(job):
                if isinstance(shots, int) and shots > info.max_shots:
                    raise fail(
                        field,
                        f"{shots:,} shots; backend {info.name!r} takes at most {info.max_shots:,}",
                    )
        exact = _exact(job) if job.program.value == "estimator" else None
        if exact is not None and (info.noisy or not info.simulator):
            raise fail(
                exact,
                f"precision 0 (exact) needs a noiseless simulator; {info.name!r} is not one",
            )
