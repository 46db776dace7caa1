"""Job batches on IBM Quantum Platform: qrt's primitive inputs as ``POST /jobs`` params, and the
platform's results in the lockfile's form.

**Inputs.** A job's inputs are qrt's V2 primitive inputs (``engine/primitives.py``: PUBs whose
circuits are OpenQASM 2/3 text or ``{library: ...}``, observables, parameter values, shots or
precision, and qrt's options). The platform runs only ISA circuits, so each circuit is transpiled
here for the backend's ``/configuration`` (its basis gates and coupling map, at the job's
``optimization_level``, default 1) and each observable follows the layout. They travel as the
official client sends them (reference "POST /jobs body"): ``params = {"pubs": [...], "options":
{...}, "version": 2, "support_qiskit": true}``, circuits as RuntimeEncoder QPY no newer than
:data:`MAX_QPY_VERSION`, parameter values as RuntimeEncoder ndarrays (shape ``(0,)`` when none),
observables as ``{PAULI: coeff}`` (nested lists of them for an array)::

    sampler PUB   [circuit, values, shots | null]
    estimator PUB [circuit, observables, values, precision | null]

qrt's options become the platform's: ``default_shots`` (sampler) and ``default_precision``
(estimator) as they are, ``seed_simulator`` (or ``seed``) as ``simulator.seed_simulator`` (used by
simulators only); ``optimization_level`` stays here, in the transpilation. Run-level ``shots`` or
``precision`` fill the PUBs that give none.

**Results** (``GET /jobs/{id}/results``) come in either encoding: the RuntimeEncoder
``PrimitiveResult`` (what ``support_qiskit`` asks for; BitArrays and ndarrays inside) or the plain
REST JSON (``{"results": [{"data": {REG: {"samples": ["0x3", ...], "num_bits": k}} | {"evs",
"stds"}, "metadata"}], "metadata"}``). Both become qiskit PubResults and then the very form the
embedded runtime records (``engine.primitives.canonical_pub_result``), so a lockfile's results do
not depend on where the jobs ran. qiskit is imported inside the functions (apply path only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qrt_apply.errors import RuntimeApiError

__all__ = ["MAX_QPY_VERSION", "canonical_result", "wire_params"]

#: The newest QPY the official client (0.51.0) writes, so the newest the platform is known to read.
MAX_QPY_VERSION = 17
_DEFAULT_OPTIMIZATION_LEVEL = 1


def _coupling_edges(configuration: Mapping[str, Any]) -> list[list[int]]:
    """The two-qubit edges of a backend: from its gates' ``coupling_map`` (which the client reads),
    else the top-level ``coupling_map``."""
    edges: set[tuple[int, int]] = set()
    for gate in configuration.get("gates") or []:
        if isinstance(gate, Mapping):
            for pair in gate.get("coupling_map") or []:
                if isinstance(pair, list) and len(pair) == 2:
                    edges.add((int(pair[0]), int(pair[1])))
    if not edges:
        for pair in configuration.get("coupling_map") or []:
            if isinstance(pair, list) and len(pair) == 2:
                edges.add((int(pair[0]), int(pair[1])))
    return [list(edge) for edge in sorted(edges)]


class _Isa:
    """Transpiles circuits for one backend configuration."""

    def __init__(self, configuration: Mapping[str, Any], level: int, seed: int | None) -> None:
        from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

        self.num_qubits = int(configuration.get("n_qubits") or configuration.get("num_qubits") or 0)
        basis = [str(g) for g in configuration.get("basis_gates") or []]
        edges = _coupling_edges(configuration)
        coupling = CouplingMap(edges) if edges else None
        if coupling is not None and self.num_qubits:
            for qubit in range(self.num_qubits):  # qubits without an edge still exist
                if qubit not in coupling.physical_qubits:
                    coupling.add_physical_qubit(qubit)
        self._pm = generate_preset_pass_manager(
            optimization_level=level,
            basis_gates=basis or None,
            coupling_map=coupling,
            seed_transpiler=seed,
        )

    def run(self, circuit: Any, where: str) -> Any:
        try:
            return self._pm.run(circuit)
        except Exception as exc:  # too wide, untranslatable gates
            raise RuntimeApiError(f"{where}: cannot transpile the circuit: {exc}") from None


def _observables_json(observables: Any) -> Any:
    """A SparsePauliOp as ``{PAULI: coeff}``, nested lists of them for an array."""
    if isinstance(observables, list):
        return [_observables_json(o) for o in observables]
    terms: dict[str, float] = {}
    for label, coeff in observables.simplify().to_list():
        terms[str(label)] = float(complex(coeff).real)
    return terms


def wire_params(
    program_id: str, inputs: Mapping[str, Any], configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """``POST /jobs`` params for built-in ``program_id`` (JSON-able; see the module docstring).
    Bad inputs raise ``RuntimeApiError(status=400)`` naming the PUB, before anything is sent."""
    import numpy as np

    from qrt_apply.engine.circuits import (
        bad_input,
        parse_circuit,
        parse_observables,
        parse_parameter_values,
    )
    from qrt_apply.engine.primitives import (
        BUILTIN_PROGRAMS,
        check_precision,
        check_shots,
        parse_options,
        pub_fields,
    )
    from qrt_apply.runtime.encoding import circuit_value, dumps

    if program_id not in BUILTIN_PROGRAMS:
        raise bad_input(f"IBM Quantum Platform runs only {' and '.join(BUILTIN_PROGRAMS)} jobs")
    unknown = sorted(set(inputs) - {"pubs", "options", "version", "shots", "precision"})
    if unknown:
        raise bad_input(f"unknown {program_id} input(s) {', '.join(unknown)}")
    if inputs.get("version", 2) != 2:
        raise bad_input("only version 2 PUB inputs are supported")
    pubs = inputs.get("pubs")
    if not isinstance(pubs, list) or not pubs:
        raise bad_input(f"{program_id} inputs need a non-empty list of pubs")
    options = parse_options(inputs.get("options"))
    level = int(options.pop("optimization_level", _DEFAULT_OPTIMIZATION_LEVEL))
    seed = options.pop("seed_simulator", None)
    isa = _Isa(configuration, level, seed)
    max_qubits = isa.num_qubits or 10_000
    wire_options: dict[str, Any] = {}
    if seed is not None:
        wire_options["simulator"] = {"seed_simulator": seed}
    encoded: list[list[Any]] = []
    for index, pub in enumerate(pubs):
        where = f"pubs[{index}]"
        fields = pub_fields(pub, program_id, where)
        circuit = parse_circuit(fields["circuit"], max_qubits=max_qubits, where=where)
        values = parse_parameter_values(fields.get("parameter_values"), circuit, where=where)
        values = np.zeros((0,)) if values is None else values
        if program_id == "sampler":
            if not circuit.cregs:
                raise bad_input(f"{where}: the circuit measures nothing; add measurements")
            shots = fields.get("shots", inputs.get("shots"))
            shots = None if shots is None else check_shots(shots, f"{where}.shots")
            encoded.append(
                [
                    circuit_value(isa.run(circuit, where), max_qpy_version=MAX_QPY_VERSION),
                    values,
                    shots,
                ]
            )
            continue
        if "observables" not in fields:
            raise bad_input(f"{where}: an estimator PUB needs observables")
        observables = parse_observables(
            fields["observables"], num_qubits=circuit.num_qubits, where=where
        )
        precision = fields.get("precision", inputs.get("precision"))
        precision = None if precision is None else check_precision(precision, f"{where}.precision")
        if circuit.num_clbits:
            circuit = circuit.remove_final_measurements(inplace=False)
        isa_circuit = isa.run(circuit, where)
        from qrt_apply.engine.aer_exec import AerExecution

        laid_out = AerExecution.follow_layout(observables, isa_circuit)
        encoded.append(
            [
                circuit_value(isa_circuit, max_qpy_version=MAX_QPY_VERSION),
                _observables_json(laid_out),
                values,
                precision,
            ]
        )
    if program_id == "sampler" and "default_shots" in options:
        wire_options["default_shots"] = options["default_shots"]
    if program_id == "estimator" and "default_precision" in options:
        wire_options["default_precision"] = options["default_precision"]
    params = {"pubs": encoded, "options": wire_options, "version": 2, "support_qiskit": True}
    decoded: dict[str, Any] = json.loads(dumps(params))
    return decoded


# -- results -----------------------------------------------------------------------------------


def _bit_array(value: Any, where: str) -> Any:
    """A qiskit BitArray from a RuntimeEncoder ``BitArray`` or a plain ``{samples, num_bits}``."""
    import numpy as np
    from qiskit.primitives.containers import BitArray

    if isinstance(value, Mapping) and value.get("__type__") == "BitArray":
        inner = value.get("__value__") or {}
        return BitArray(np.asarray(inner["array"], dtype=np.uint8), int(inner["num_bits"]))
    num_bits = int(value["num_bits"])
    samples = np.asarray(value["samples"], dtype=str)
    if samples.ndim == 0:
        raise ValueError(f"{where}: samples must be a list")
    num_bytes = max(1, (num_bits + 7) // 8)
    flat = [int(str(s), 16) for s in samples.reshape(-1)]
    raw = np.array(
        [[(v >> (8 * (num_bytes - 1 - j))) & 0xFF for j in range(num_bytes)] for v in flat],
        dtype=np.uint8,
    ).reshape((*samples.shape, num_bytes))
    return BitArray(raw, num_bits)


def _pub_result(data: Mapping[str, Any], metadata: Any, shape: Any, where: str) -> Any:
    import numpy as np
    from qiskit.primitives.containers import DataBin, PubResult, SamplerPubResult

    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    if "evs" in data:
        evs = np.asarray(data["evs"], dtype=float)
        stds = np.asarray(data.get("stds", np.zeros(evs.shape)), dtype=float)
        return PubResult(DataBin(evs=evs, stds=stds, shape=evs.shape), metadata)
    fields = {name: _bit_array(value, f"{where}.{name}") for name, value in data.items()}
    if shape is None:
        shape = next(iter(fields.values())).shape if fields else ()
    return SamplerPubResult(DataBin(**fields, shape=tuple(shape)), metadata)


def _encoded_pubs(value: Mapping[str, Any]) -> list[Any]:
    """PubResults of a decoded RuntimeEncoder ``PrimitiveResult``."""
    inner = value.get("__value__") or {}
    pubs = []
    for index, pub in enumerate(inner.get("pub_results") or []):
        body = pub.get("__value__") or {}
        data = body.get("data") or {}
        if data.get("__type__") == "DataBin":
            bin_value = data.get("__value__") or {}
            fields, shape = bin_value.get("fields") or {}, bin_value.get("shape")
        else:
            fields, shape = data, None
        pubs.append(_pub_result(fields, body.get("metadata"), shape, f"pub_results[{index}]"))
    return pubs


def canonical_result(text: str) -> str | None:
    """The lockfile form (JSON text) of a result in either encoding; None when ``text`` is no
    primitive result (a failed job's message, say)."""
    from qrt_apply.engine.primitives import canonical_pub_result
    from qrt_apply.runtime.encoding import loads

    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        if raw.get("__type__") == "PrimitiveResult":
            pubs = _encoded_pubs(loads(text))
        elif isinstance(raw.get("results"), list):
            pubs = []
            for index, item in enumerate(raw["results"]):
                data = item.get("data") or {}
                if any(isinstance(v, Mapping) and "counts" in v for v in data.values()):
                    return None  # already in the lockfile form
                pubs.append(_pub_result(data, item.get("metadata"), None, f"results[{index}]"))
        else:
            return None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RuntimeApiError(f"the platform sent a result qrt cannot read: {exc}") from None
    results = [canonical_pub_result(pub) for pub in pubs]
    return json.dumps({"results": results, "metadata": {"version": 2}}, sort_keys=True)
