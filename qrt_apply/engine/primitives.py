"""The built-in programs ``sampler`` and ``estimator``, executed on qiskit-aer.

``execute_builtin(program_id, params, backend_name)`` returns the job's return value. ``params`` are
the decoded job inputs (``runtime/encoding.py``). Bad input raises ``RuntimeApiError(status=400)``.

**V2 inputs** (``params`` has ``pubs``)::

    {"pubs": [PUB, ...],
     "options": {"default_shots": int,          # sampler, default 1024
                 "default_precision": float,    # estimator, default 0.015625
                 "seed_simulator": int,         # or "seed": reproducible runs
                 "optimization_level": 0..3},   # transpiler, default 1
     "shots": int, "precision": float, "version": 2}   # optional run-level defaults
    PUB = {"circuit": C, "observables": O, "parameter_values": V, "shots": int, "precision": float}
        | [C, V?, shots?]                 # sampler tuple form (as qiskit's SamplerPub)
        | [C, O, V?, precision?]          # estimator tuple form (as qiskit's EstimatorPub)
        | C                               # sampler only
    C = "OPENQASM 2.0; ..." | "OPENQASM 3.0; ..." | {"library": NAME, ...args, "measure_all": bool}
        | QuantumCircuit
    O = [[PAULI, COEFF], ...] | "ZZ" | {"ZZ": 1.0} | SparsePauliOp | [O, ...]  (array)
    V = [float, ...] (one binding) | [[float, ...], ...] (array) | {NAME: value(s)}

**V2 result** (plain JSON)::

    sampler:   {"results": [{"data": {REG: {"counts": {"00": n, "11": m}, "num_shots": n,
                                            "num_bits": k, "shape": []}},
                             "metadata": {"shots": n, "circuit_metadata": {...}}}, ...],
                "metadata": {"version": 2, "backend": NAME, "seed": s, "optimization_level": l}}
    estimator: {"results": [{"data": {"evs": float, "stds": float, "shape": []},
                             "metadata": {"target_precision": p, "shots": n?, ...}}, ...],
                "metadata": {...}}

Bitstrings are qiskit's (``BitArray.get_counts``: bit 0 rightmost). For a PUB with an array of
bindings/observables (``shape`` non-empty), ``counts``, ``evs`` and ``stds`` are nested lists of that
shape.

With ``"support_qiskit": true`` (what qiskit-ibm-runtime sends) the result is instead the qiskit
``PrimitiveResult`` itself (``SamplerPubResult``s of ``BitArray``s, ``PubResult``s of ``evs``/``stds``
arrays), which the worker writes with the RuntimeEncoder as that client decodes it; the client's
option groups are read by ``ibm_options``.

**V1 inputs** (``params`` has ``circuits``, as qiskit-ibm-runtime 0.11 sends them; see
``primitives_v1.py``) give V1 results: sampler ``{"quasi_dists": [{"0x3": 0.5, ...}], "metadata":
[{"shots": n}]}``, estimator ``{"values": ndarray, "metadata": [{"variance": v, "shots": n}]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qrt_apply.engine.aer_exec import MAX_SHOTS, AerExecution, RunSettings, jsonable, nested
from qrt_apply.engine.circuits import (
    bad_input,
    parse_circuit,
    parse_observables,
    parse_parameter_values,
)

__all__ = [
    "BUILTIN_PROGRAMS",
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "canonical_pub_result",
    "check_builtin_inputs",
    "execute_builtin",
    "ibm_options",
    "pub_fields",
]

BUILTIN_PROGRAMS: tuple[str, ...] = ("sampler", "estimator")
DEFAULT_SHOTS = 1024
DEFAULT_PRECISION = 0.015625
MAX_PUBS = 300

_OPTION_KEYS = {
    "default_shots",
    "default_precision",
    "seed_simulator",
    "seed",
    "optimization_level",
}
_V2_KEYS = {
    "pubs",
    "options",
    "version",
    "shots",
    "precision",
    "support_qiskit",
    "resilience_level",
}
# Option groups of qiskit-ibm-runtime's SamplerV2/EstimatorV2 that shape a run on quantum hardware
# (error suppression and mitigation, execution timing, the client's environment): a noiseless or
# fixed-noise simulation has nothing to apply them to, so a job from that client ignores them.
_IBM_HARDWARE_OPTIONS = {
    "dynamical_decoupling",
    "twirling",
    "resilience",
    "resilience_level",
    "execution",
    "environment",
    "experimental",
    "max_execution_time",
    "seed_estimator",
}
_PUB_KEYS = {
    "sampler": {"circuit", "parameter_values", "shots"},
    "estimator": {"circuit", "observables", "parameter_values", "precision"},
}


def execute_builtin(program_id: str, params: Mapping[str, Any], backend_name: str) -> Any:
    """Run built-in ``program_id`` on ``backend_name`` with decoded ``params``; return the result."""
    if program_id not in BUILTIN_PROGRAMS:
        raise bad_input(f"{program_id!r} is not a built-in program ({', '.join(BUILTIN_PROGRAMS)})")
    if not isinstance(params, Mapping):
        raise bad_input(f"{program_id} inputs must be an object, not {type(params).__name__}")
    if "pubs" in params:
        return _run_v2(program_id, params, backend_name)
    if "circuits" in params:
        from qrt_apply.engine.primitives_v1 import run_v1

        return run_v1(program_id, params, backend_name)
    raise bad_input(f"{program_id} inputs need 'pubs' (V2 primitives) or 'circuits' (V1)")


def parse_options(value: Any) -> dict[str, Any]:
    """The validated ``options`` object of a primitive job (unknown keys are refused)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad_input("options must be an object")
    unknown = sorted(set(value) - _OPTION_KEYS)
    if unknown:
        raise bad_input(
            f"unknown primitive option(s) {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(_OPTION_KEYS))}"
        )
    options = dict(value)
    if "seed" in options and "seed_simulator" in options:
        raise bad_input("give either options.seed or options.seed_simulator, not both")
    if "seed" in options:
        options["seed_simulator"] = options.pop("seed")
    seed = options.get("seed_simulator")
    if seed is not None and not _is_int(seed, 0, 2**63 - 1):
        raise bad_input("options.seed_simulator must be a non-negative integer")
    if "optimization_level" in options and not _is_int(options["optimization_level"], 0, 3):
        raise bad_input("options.optimization_level must be 0, 1, 2 or 3")
    if "default_shots" in options:
        check_shots(options["default_shots"], "options.default_shots")
    if "default_precision" in options:
        check_precision(options["default_precision"], "options.default_precision")
    return options


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_shots(value: Any, where: str) -> int:
    """``value`` as a shot count, or a 400."""
    if not _is_int(value, 1, MAX_SHOTS):
        raise bad_input(f"{where} must be an integer from 1 to {MAX_SHOTS}, not {value!r}")
    return int(value)


def check_precision(value: Any, where: str) -> float:
    """``value`` as a target precision, or a 400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise bad_input(f"{where} must be a number from 0 to 1, not {value!r}")
    return float(value)


def check_builtin_inputs(program_id: str, params: Mapping[str, Any], backend_name: str) -> None:
    """Refuse (400) V2 inputs that ``execute_builtin`` would refuse, without simulating anything:
    options, PUB shapes, circuits, observables, parameter values, shots and precision are parsed
    as a run parses them; only transpilation and the run itself are left out."""
    if program_id not in BUILTIN_PROGRAMS:
        raise bad_input(f"{program_id!r} is not a built-in program ({', '.join(BUILTIN_PROGRAMS)})")
    if not isinstance(params, Mapping) or "pubs" not in params:
        raise bad_input(f"{program_id} inputs need 'pubs' (V2 primitives)")
    _run_v2(program_id, params, backend_name, dry=True)


class _DryExecution:
    """What PUB parsing asks of an ``AerExecution``, for ``check_builtin_inputs``: the backend's
    width and kind, and no transpilation."""

    def __init__(self, backend_name: str) -> None:
        from qrt_apply.engine import backends

        try:
            info = backends.backend_info(backend_name)
        except KeyError as exc:
            raise bad_input(str(exc.args[0])) from None
        self.max_qubits = info.num_qubits
        self.shot_based = info.noisy

    def transpile(self, circuit: Any, where: str) -> Any:
        return circuit

    def follow_layout(self, observables: Any, isa_circuit: Any) -> Any:
        return observables


def _run_v2(
    program: str, params: Mapping[str, Any], backend_name: str, *, dry: bool = False
) -> Any:
    unknown = sorted(set(params) - _V2_KEYS)
    if unknown:
        raise bad_input(f"unknown {program} input(s) {', '.join(unknown)}")
    if params.get("version", 2) != 2:
        raise bad_input("only version 2 PUB inputs are supported")
    qiskit_result = params.get("support_qiskit") is True
    raw_options = params.get("options")
    options = parse_options(ibm_options(raw_options) if qiskit_result else raw_options)
    pubs = params["pubs"]
    if not isinstance(pubs, list) or not pubs or len(pubs) > MAX_PUBS:
        raise bad_input(f"pubs must be a list of 1 to {MAX_PUBS} PUBs")
    settings = RunSettings(
        seed=options.get("seed_simulator"),
        optimization_level=options.get("optimization_level", 1),
    )
    execution: Any = _DryExecution(backend_name) if dry else AerExecution(backend_name, settings)
    meta = {
        "version": 2,
        "backend": backend_name,
        "seed": settings.seed,
        "optimization_level": settings.optimization_level,
    }
    if program == "sampler":
        shots = params.get("shots", options.get("default_shots", DEFAULT_SHOTS))
        shots = check_shots(shots, "shots")
        sampler_pubs = [_sampler_pub(p, i, execution, shots) for i, p in enumerate(pubs)]
        if dry:
            return None
        result = execution.run_sampler(sampler_pubs)
        if qiskit_result:
            return _qiskit_result(result, meta)
        return {"results": [_sampler_result(r) for r in result], "metadata": meta}
    precision = params.get("precision", options.get("default_precision", DEFAULT_PRECISION))
    precision = check_precision(precision, "precision")
    estimator_pubs = [_estimator_pub(p, i, execution, precision) for i, p in enumerate(pubs)]
    if dry:
        return None
    result = execution.run_estimator(estimator_pubs)
    if qiskit_result:
        return _qiskit_result(result, meta)
    return {"results": [_estimator_result(r) for r in result], "metadata": meta}


def ibm_options(value: Any) -> Any:
    """qiskit-ibm-runtime's primitive options as this runtime's: ``default_shots`` and
    ``default_precision`` as they are, ``simulator.seed_simulator`` as ``seed_simulator``, the
    hardware-only groups dropped; anything else is left for ``parse_options`` to refuse."""
    if not isinstance(value, Mapping):
        return value
    options = {k: v for k, v in value.items() if k not in _IBM_HARDWARE_OPTIONS}
    simulator = options.pop("simulator", None)
    if simulator is not None:
        if not isinstance(simulator, Mapping):
            raise bad_input("options.simulator must be an object")
        unsupported = sorted(set(simulator) - {"seed_simulator"})
        if unsupported:
            raise bad_input(
                f"options.simulator.{', '.join(unsupported)} is not supported: the backend "
                "fixes its own noise, coupling map and basis gates (seed_simulator is accepted)"
            )
        if simulator.get("seed_simulator") is not None:
            options["seed_simulator"] = simulator["seed_simulator"]
    return options


def _qiskit_result(result: Any, meta: dict[str, Any]) -> Any:
    """The qiskit ``PrimitiveResult`` itself, for a client that decodes qiskit objects
    (``support_qiskit``), with JSON-able metadata: shot order and the joint bits of several
    registers survive, which counts alone would lose."""
    from qiskit.primitives import PrimitiveResult, PubResult, SamplerPubResult

    pubs = [
        (SamplerPubResult if isinstance(r, SamplerPubResult) else PubResult)(
            r.data, metadata=_pub_metadata(r.metadata)
        )
        for r in result
    ]
    return PrimitiveResult(pubs, metadata=meta)


def pub_fields(pub: Any, program: str, where: str) -> dict[str, Any]:
    if isinstance(pub, Mapping) and "library" not in pub:
        unknown = sorted(set(pub) - _PUB_KEYS[program])
        if unknown:
            allowed = ", ".join(sorted(_PUB_KEYS[program]))
            raise bad_input(f"{where}: unknown {program} PUB key(s) {unknown}; allowed: {allowed}")
        if "circuit" not in pub:
            raise bad_input(f"{where}: a PUB needs a 'circuit'")
        return dict(pub)
    if isinstance(pub, (list, tuple)):
        names = (
            ("circuit", "parameter_values", "shots")
            if program == "sampler"
            else ("circuit", "observables", "parameter_values", "precision")
        )
        if not pub or len(pub) > len(names):
            raise bad_input(
                f"{where}: a {program} PUB tuple is ({', '.join(names)}), some optional"
            )
        return {k: v for k, v in zip(names, pub, strict=False) if v is not None}
    if program == "sampler":
        return {"circuit": pub}
    raise bad_input(f"{where}: an estimator PUB needs a circuit and observables")


def _sampler_pub(pub: Any, index: int, execution: AerExecution, shots: int) -> tuple[Any, Any, int]:
    where = f"pubs[{index}]"
    fields = pub_fields(pub, "sampler", where)
    circuit = parse_circuit(fields["circuit"], max_qubits=execution.max_qubits, where=where)
    if not circuit.cregs:
        raise bad_input(
            f"{where}: the circuit measures nothing; add measurements (or measure_all: true)"
        )
    values = parse_parameter_values(fields.get("parameter_values"), circuit, where=where)
    pub_shots = check_shots(fields.get("shots", shots), f"{where}.shots")
    return execution.transpile(circuit, where), values, pub_shots


def _estimator_pub(
    pub: Any, index: int, execution: AerExecution, precision: float
) -> tuple[Any, Any, Any, float]:
    where = f"pubs[{index}]"
    fields = pub_fields(pub, "estimator", where)
    circuit = parse_circuit(fields["circuit"], max_qubits=execution.max_qubits, where=where)
    if "observables" not in fields:
        raise bad_input(f"{where}: an estimator PUB needs observables")
    observables = parse_observables(
        fields["observables"], num_qubits=circuit.num_qubits, where=where
    )
    values = parse_parameter_values(fields.get("parameter_values"), circuit, where=where)
    pub_precision = check_precision(fields.get("precision", precision), f"{where}.precision")
    if pub_precision == 0 and execution.shot_based:
        raise bad_input(f"{where}: precision 0 (exact) is only available on a noiseless simulator")
    if circuit.num_clbits:
        circuit = circuit.remove_final_measurements(inplace=False)
    isa = execution.transpile(circuit, where)
    return isa, execution.follow_layout(observables, isa), values, pub_precision


def canonical_pub_result(pub_result: Any) -> dict[str, Any]:
    """The V2 result form above of one qiskit ``PubResult`` (an estimator's when its data has
    ``evs``, else a sampler's): how every runtime's results are recorded, wherever they ran."""
    if "evs" in pub_result.data:
        return _estimator_result(pub_result)
    return _sampler_result(pub_result)


def _sampler_result(pub_result: Any) -> dict[str, Any]:
    data = {}
    for name, bits in pub_result.data.items():
        shape = tuple(bits.shape)
        data[name] = {
            "counts": nested(shape, _counts_of(bits)),
            "num_shots": int(bits.num_shots),
            "num_bits": int(bits.num_bits),
            "shape": list(shape),
        }
    return {"data": data, "metadata": _pub_metadata(pub_result.metadata)}


def _counts_of(bits: Any) -> Callable[[tuple[int, ...]], dict[str, int]]:
    def counts(index: tuple[int, ...]) -> dict[str, int]:
        return dict(bits.get_counts(loc=index) if index else bits.get_counts())

    return counts


def _estimator_result(pub_result: Any) -> dict[str, Any]:
    evs, stds = pub_result.data.evs, pub_result.data.stds
    data = {"evs": jsonable(evs), "stds": jsonable(stds), "shape": list(evs.shape)}
    return {"data": data, "metadata": _pub_metadata(pub_result.metadata)}


def _pub_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("shots", "target_precision", "circuit_metadata")
    return {k: jsonable(metadata[k]) for k in keep if k in metadata}
