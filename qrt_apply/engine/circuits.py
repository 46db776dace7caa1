"""Parsing of primitive job inputs: circuits, observables and parameter values.

Circuits
    * OpenQASM text, recognised by its header: ``OPENQASM 2.x`` (``qiskit.qasm2.loads``, only the
      built-in ``qelib1.inc`` may be included) or ``OPENQASM 3.x`` (``qiskit.qasm3.loads``, only
      ``stdgates.inc``); nothing is ever read from the server's file system;
    * ``{"library": NAME, ...args}`` for an allow-listed ``qiskit.circuit.library`` function
      (:data:`LIBRARY`), plus the optional key ``measure_all: true``;
    * a ``QuantumCircuit`` decoded from a QPY payload.

Observables
    ``[[PAULI, COEFF], ...]`` (one observable; COEFF a number, ``[re, im]`` or complex), a Pauli
    string ``"ZZ"``, a dict ``{"ZZ": 1.0, ...}``, a decoded ``SparsePauliOp``/``Pauli``/``PauliList``,
    or a (nested) list of these for an array of observables.

Parameter values
    a number list (one binding), nested lists (an array of bindings, last axis = parameters in
    ``circuit.parameters`` order), an ndarray, or ``{NAME: value-or-list, ...}``.

Every malformed input raises ``RuntimeApiError(status=400)`` naming what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from qrt_apply.errors import RuntimeApiError

__all__ = [
    "LIBRARY",
    "MAX_BINDINGS",
    "bad_input",
    "parse_circuit",
    "parse_observables",
    "parse_parameter_values",
]

MAX_BINDINGS = 10_000
_MAX_REPS = 100
_MAX_DEPTH = 1_000


def bad_input(message: str) -> RuntimeApiError:
    """The error for an invalid job input (HTTP 400)."""
    return RuntimeApiError(message, status=400)


def _qft(num_qubits: int, **kwargs: Any) -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import QFTGate

    circuit = QuantumCircuit(num_qubits)
    circuit.append(QFTGate(num_qubits, **kwargs), circuit.qubits)
    return circuit


def _ghz(num_qubits: int) -> Any:
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(num_qubits)
    circuit.h(0)
    for qubit in range(1, num_qubits):
        circuit.cx(0, qubit)
    return circuit


def _library_function(name: str) -> Callable[..., Any]:
    import qiskit.circuit.library as lib

    return getattr(lib, name)  # type: ignore[no-any-return]  # name is from LIBRARY only


#: ``{library: NAME}`` values accepted, and what builds them.
LIBRARY: dict[str, Callable[..., Any]] = {
    name: (lambda n: lambda **kw: _library_function(n)(**kw))(name)
    for name in (
        "real_amplitudes",
        "efficient_su2",
        "excitation_preserving",
        "pauli_two_design",
        "n_local",
        "zz_feature_map",
        "z_feature_map",
        "pauli_feature_map",
        "quantum_volume",
    )
}
LIBRARY["qft"] = _qft
LIBRARY["ghz"] = _ghz

_HEADER = re.compile(r"^\s*OPENQASM\s+(\d+)(?:\.\d+)?\s*;")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def parse_circuit(value: Any, *, max_qubits: int, where: str) -> Any:
    """A ``QuantumCircuit`` from one circuit input (see the module docstring)."""
    from qiskit import QuantumCircuit

    if isinstance(value, QuantumCircuit):
        circuit = value
    elif isinstance(value, str):
        circuit = _from_qasm(value, where)
    elif isinstance(value, Mapping) and "library" in value:
        circuit = _from_library(value, max_qubits, where)
    else:
        raise bad_input(
            f"{where}: a circuit must be OpenQASM 2/3 text, {{library: NAME, ...}} or a QPY "
            f"QuantumCircuit, not {type(value).__name__}"
        )
    if circuit.num_qubits > max_qubits:
        raise bad_input(
            f"{where}: circuit has {circuit.num_qubits} qubits; this backend has {max_qubits}"
        )
    return circuit


def _from_qasm(text: str, where: str) -> Any:
    from qiskit import qasm2, qasm3

    header = _HEADER.match(_COMMENT.sub("", text))
    if header is None:
        raise bad_input(f"{where}: circuit text must start with an 'OPENQASM 2.0;' or 3 header")
    try:
        if header.group(1) == "2":
            return qasm2.loads(
                text, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS
            )
        if header.group(1) == "3":
            return qasm3.loads(text)
    except Exception as exc:  # parser errors of both importers, with line and column
        raise bad_input(f"{where}: invalid OpenQASM {header.group(1)}: {exc}") from None
    raise bad_input(f"{where}: unsupported OpenQASM version {header.group(1)}")


def _from_library(spec: Mapping[str, Any], max_qubits: int, where: str) -> Any:
    name = spec["library"]
    if not isinstance(name, str) or name not in LIBRARY:
        raise bad_input(
            f"{where}: unknown library circuit {name!r}; supported: {', '.join(sorted(LIBRARY))}"
        )
    args = {k: v for k, v in spec.items() if k not in ("library", "measure_all")}
    for key, limit in (
        ("num_qubits", max_qubits),
        ("feature_dimension", max_qubits),
        ("reps", _MAX_REPS),
        ("depth", _MAX_DEPTH),
    ):
        val = args.get(key)
        if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val > limit):
            raise bad_input(f"{where}: library {name}: {key} must be an integer <= {limit}")
    measure_all = spec.get("measure_all", False)
    if not isinstance(measure_all, bool):
        raise bad_input(f"{where}: measure_all must be true or false")
    try:
        circuit = LIBRARY[name](**args)
    except Exception as exc:  # wrong or missing arguments of the library function
        raise bad_input(f"{where}: library {name}({_args(args)}): {exc}") from None
    if measure_all:
        circuit.measure_all()
    return circuit


def _args(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def parse_observables(value: Any, *, num_qubits: int, where: str) -> Any:
    """A ``SparsePauliOp``, or a nested list of them for an array of observables."""
    from qiskit.quantum_info import Pauli, PauliList, SparsePauliOp

    try:
        if isinstance(value, SparsePauliOp):
            obs = value
        elif isinstance(value, (Pauli, PauliList)):
            obs = SparsePauliOp(value)
        elif isinstance(value, str):
            obs = SparsePauliOp(value)
        elif isinstance(value, Mapping):
            obs = SparsePauliOp.from_list([(k, _coeff(c)) for k, c in value.items()])
        elif _is_term_list(value):
            obs = SparsePauliOp.from_list([(term[0], _coeff(term[1])) for term in value])
        elif isinstance(value, (list, tuple)) and value:
            return [parse_observables(v, num_qubits=num_qubits, where=where) for v in value]
        else:
            raise ValueError(
                "expected [[PAULI, COEFF], ...], a Pauli string, {PAULI: COEFF} or a list of them"
            )
    except RuntimeApiError:
        raise
    except Exception as exc:  # bad Pauli labels, bad coefficients
        raise bad_input(f"{where}: invalid observable: {exc}") from None
    if obs.num_qubits != num_qubits:
        raise bad_input(
            f"{where}: observable acts on {obs.num_qubits} qubits, the circuit has {num_qubits}"
        )
    if not _hermitian(obs):
        raise bad_input(f"{where}: observable is not Hermitian")
    return obs


def _hermitian(obs: Any) -> bool:
    import numpy as np

    return bool(np.allclose(obs.simplify().coeffs.imag, 0.0, atol=1e-10))


def _is_term_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(
            isinstance(t, (list, tuple)) and len(t) == 2 and isinstance(t[0], str) for t in value
        )
        and not all(isinstance(t[1], str) for t in value)
    )


def _coeff(value: Any) -> complex:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"bad coefficient {value!r}")
    if isinstance(value, (int, float, complex)):
        return complex(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return complex(float(value[0]), float(value[1]))
    if hasattr(value, "item"):  # numpy scalar
        return complex(value.item())
    raise ValueError(f"bad coefficient {value!r}")


def parse_parameter_values(value: Any, circuit: Any, *, where: str) -> Any:
    """An ndarray of shape ``(..., circuit.num_parameters)``, or None for no parameters."""
    import numpy as np

    nparams = circuit.num_parameters
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        if nparams:
            raise bad_input(f"{where}: circuit has {nparams} parameters but no values were given")
        return None
    try:
        if isinstance(value, Mapping):
            arrays = _values_by_name(value, circuit, where)
            shapes = np.broadcast_shapes(*(a.shape for a in arrays))
            values = np.stack([np.broadcast_to(a, shapes) for a in arrays], axis=-1)
        else:
            values = np.asarray(value, dtype=float)
    except RuntimeApiError:
        raise
    except Exception as exc:  # ragged lists, strings, incompatible shapes
        raise bad_input(f"{where}: invalid parameter_values: {exc}") from None
    if values.ndim == 0 or values.shape[-1] != nparams:
        raise bad_input(
            f"{where}: parameter_values must end in an axis of {nparams} values "
            f"(the circuit's parameters in order), got shape {list(values.shape)}"
        )
    if values.size // max(nparams, 1) > MAX_BINDINGS:
        raise bad_input(f"{where}: more than {MAX_BINDINGS} parameter bindings")
    if not np.all(np.isfinite(values)):
        raise bad_input(f"{where}: parameter_values must be finite numbers")
    return values


def _values_by_name(value: Mapping[Any, Any], circuit: Any, where: str) -> list[Any]:
    import numpy as np

    names = [p.name for p in circuit.parameters]
    given = {str(getattr(k, "name", k)): v for k, v in value.items()}
    if set(given) != set(names):
        raise bad_input(
            f"{where}: parameter_values names {sorted(given)} do not match the circuit's "
            f"parameters {names}"
        )
    return [np.asarray(given[n], dtype=float) for n in names]
