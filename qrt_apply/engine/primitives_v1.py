"""V1 primitive inputs, as the qiskit-ibm-runtime 0.11/0.12 ``Sampler``/``Estimator`` send them.

Inputs (reference section 11)::

    circuits               [QuantumCircuit | OpenQASM | {library: ...}, ...]
    circuit_indices        [int, ...]  one entry per requested result; defaults to every circuit
    parameters             per circuit, its Parameters (bound by name, else positionally)
    parameter_values       per result, a list of floats
    observables            (estimator) [SparsePauliOp | [[PAULI, COEFF], ...] | ...]
    observable_indices     (estimator) per result, an index into observables
    transpilation_settings optimization_settings.level, skip_transpilation, initial_layout,
                           layout_method, routing_method, approximation_degree, coupling_map,
                           basis_gates (the last two only for the noiseless simulator)
    run_options            shots (default 4000, as the client's), seed_simulator, noise_model
    resilience_settings    accepted and ignored: the simulators apply no error mitigation
    options                qrt's primitive options (default_shots, seed_simulator, ...), optional

Results are what the old clients' result decoders build ``SamplerResult``/``EstimatorResult`` from:
sampler ``{"quasi_dists": [{"0x0": p, "0x3": q}, ...], "metadata": [{"shots": n}, ...]}`` (hex keys
over all classical bits, bit 0 least significant) and estimator ``{"values": ndarray,
"metadata": [{"variance": v, "shots": n}, ...]}``. Estimates are shot-based on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from qrt_apply.engine.aer_exec import AerExecution, RunSettings
from qrt_apply.engine.circuits import bad_input, parse_circuit, parse_observables
from qrt_apply.engine.primitives import check_shots, parse_options

__all__ = ["V1_DEFAULT_SHOTS", "run_v1"]

V1_DEFAULT_SHOTS = 4000
_TRANSPILE_KEYS = ("initial_layout", "layout_method", "routing_method", "approximation_degree")


def run_v1(program: str, params: Mapping[str, Any], backend_name: str) -> dict[str, Any]:
    """Run V1 sampler/estimator ``params`` on ``backend_name``; the V1 result."""
    options = parse_options(params.get("options"))
    run_options = _mapping(params.get("run_options"), "run_options")
    transpilation = _mapping(params.get("transpilation_settings"), "transpilation_settings")
    shots = run_options.get("shots")
    shots = check_shots(
        shots if shots is not None else options.get("default_shots", V1_DEFAULT_SHOTS),
        "run_options.shots",
    )
    seed = run_options.get("seed_simulator")
    if seed is None:
        seed = options.get("seed_simulator")
    elif not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad_input("run_options.seed_simulator must be a non-negative integer")
    settings = _settings(transpilation, options, seed, run_options.get("noise_model"))
    execution = AerExecution(backend_name, settings)
    if (
        execution.shot_based
        and settings.noise_model is None
        and (
            transpilation.get("coupling_map") is not None
            or transpilation.get("basis_gates") is not None
        )
    ):
        raise bad_input("coupling_map and basis_gates apply to the noiseless simulator only")
    circuits = _circuits(params, execution)
    indices = _indices(params.get("circuit_indices"), len(circuits), "circuit_indices", None)
    values = params.get("parameter_values")
    values = [[]] * len(indices) if values is None else values
    if not isinstance(values, (list, tuple)) or len(values) != len(indices):
        raise bad_input("parameter_values needs one list of values per circuit index")
    bound = [
        _bind(circuits[ci], _names(params, ci), values[k], f"circuits[{ci}]")
        for k, ci in enumerate(indices)
    ]
    if program == "sampler":
        return _sample(execution, bound, shots)
    return _estimate(execution, params, bound, shots)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise bad_input(f"{where} must be an object")
    return value


def _settings(
    transpilation: Mapping[str, Any], options: Mapping[str, Any], seed: Any, noise_model: Any
) -> RunSettings:
    level = (transpilation.get("optimization_settings") or {}).get("level")
    if level is None:
        level = options.get("optimization_level", 1)
    if transpilation.get("skip_transpilation"):
        level = 0  # the simulators still need their basis gates, so the circuit is translated only
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 3:
        raise bad_input("transpilation_settings.optimization_settings.level must be 0..3")
    extra = {k: transpilation[k] for k in _TRANSPILE_KEYS if transpilation.get(k) is not None}
    for key in ("coupling_map", "basis_gates"):
        if transpilation.get(key) is not None:
            extra[key] = transpilation[key]
    if noise_model is not None and not hasattr(noise_model, "to_dict"):
        from qiskit_aer.noise import NoiseModel

        try:
            noise_model = NoiseModel.from_dict(noise_model)
        except Exception as exc:  # a malformed noise model dict
            raise bad_input(f"run_options.noise_model: {exc}") from None
    return RunSettings(
        seed=seed, optimization_level=level, transpile_options=extra, noise_model=noise_model
    )


def _circuits(params: Mapping[str, Any], execution: AerExecution) -> list[Any]:
    circuits = params["circuits"]
    if not isinstance(circuits, (list, tuple)):
        circuits = [circuits]
    if not circuits:
        raise bad_input("circuits must not be empty")
    return [
        parse_circuit(c, max_qubits=execution.max_qubits, where=f"circuits[{i}]")
        for i, c in enumerate(circuits)
    ]


def _indices(value: Any, count: int, where: str, default_len: int | None) -> list[int]:
    if value is None:
        return list(range(count if default_len is None else default_len))
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in value
    ):
        raise bad_input(f"{where} must be a list of indices from 0 to {count - 1}")
    return list(value)


def _names(params: Mapping[str, Any], circuit_index: int) -> list[str] | None:
    parameters = params.get("parameters")
    if not isinstance(parameters, (list, tuple)) or circuit_index >= len(parameters):
        return None
    names = [getattr(p, "name", p) for p in parameters[circuit_index] or []]
    return [str(n) for n in names]


def _bind(circuit: Any, names: list[str] | None, values: Any, where: str) -> Any:
    if not isinstance(values, (list, tuple)) and not hasattr(values, "tolist"):
        raise bad_input(f"{where}: parameter values must be a list of numbers")
    values = list(values.tolist() if hasattr(values, "tolist") else values)
    params = list(circuit.parameters)
    if len(values) != len(params):
        raise bad_input(f"{where}: circuit has {len(params)} parameters, got {len(values)} values")
    if not params:
        return circuit
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise bad_input(f"{where}: parameter values must be numbers") from None
    if not all(math.isfinite(v) for v in numbers):
        raise bad_input(f"{where}: parameter values must be finite")
    if names is not None and sorted(names) == sorted(p.name for p in params):
        by_name = dict(zip(names, numbers, strict=True))
        binding = {p: by_name[p.name] for p in params}
    else:
        binding = dict(zip(params, numbers, strict=True))
    return circuit.assign_parameters(binding)


def _sample(execution: AerExecution, circuits: Sequence[Any], shots: int) -> dict[str, Any]:
    pubs = []
    for i, circuit in enumerate(circuits):
        if not circuit.cregs:
            raise bad_input(f"circuit {i} measures nothing; the sampler needs measurements")
        pubs.append((execution.transpile(circuit, f"circuit {i}"), None, shots))
    result = execution.run_sampler(pubs)
    quasi_dists = []
    for pub_result in result:
        counts = pub_result.join_data().get_int_counts()
        total = sum(counts.values())
        quasi_dists.append({hex(k): n / total for k, n in sorted(counts.items())})
    return {"quasi_dists": quasi_dists, "metadata": [{"shots": shots} for _ in quasi_dists]}


def _estimate(
    execution: AerExecution, params: Mapping[str, Any], circuits: Sequence[Any], shots: int
) -> dict[str, Any]:
    import numpy as np

    raw_observables = params.get("observables")
    if not isinstance(raw_observables, (list, tuple)) or not raw_observables:
        raise bad_input("the estimator needs a non-empty list of observables")
    indices = _indices(
        params.get("observable_indices"),
        len(raw_observables),
        "observable_indices",
        len(circuits),
    )
    if len(indices) != len(circuits):
        raise bad_input("observable_indices needs one entry per circuit index")
    # 1/sqrt(shots), nudged so that ceil(1/precision**2) is exactly `shots` despite rounding
    precision = (1.0 + 1e-9) / math.sqrt(shots)
    pubs = []
    for k, (circuit, oi) in enumerate(zip(circuits, indices, strict=True)):
        where = f"observables[{oi}]"
        obs = parse_observables(raw_observables[oi], num_qubits=circuit.num_qubits, where=where)
        if isinstance(obs, list):
            raise bad_input(f"{where}: a V1 observable must be a single operator")
        if circuit.num_clbits:
            circuit = circuit.remove_final_measurements(inplace=False)
        isa = execution.transpile(circuit, f"circuit {k}")
        pubs.append((isa, execution.follow_layout(obs, isa), None, precision))
    # V1 estimates are shot-based, as the real service's were: variance and shots are meaningful
    result = execution.run_estimator(pubs, shot_based=True)
    values = np.array([float(r.data.evs) for r in result])
    metadata = [{"variance": float(r.data.stds) ** 2 * shots, "shots": shots} for r in result]
    return {"values": values, "metadata": metadata}
