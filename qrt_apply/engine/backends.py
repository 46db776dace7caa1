"""The simulated backends of the local runtime: names, IBM configuration/status JSON, executors.

=================== ======= ===== ===================================================================
name                qubits  noisy executes on
=================== ======= ===== ===================================================================
aer_simulator       24      no    ``AerSimulator()`` (statevector/automatic), all-to-all
ibmq_qasm_simulator 24      no    alias of ``aer_simulator``, answered under the name given
fake_noisy_5q       5       yes   ``AerSimulator.from_backend(GenericBackendV2(5, line, seed=5))``:
                                  basis cx/id/rz/sx/x, line coupling 0-1-2-3-4, seeded error rates
=================== ======= ===== ===================================================================

The width of the noiseless simulator is capped at 24 qubits (a 256 MiB statevector) so that one job
cannot exhaust the machine; qiskit-aer itself would go to 30. Everything here is static data except
:func:`make_backend` and :func:`noisy_device`, the only functions that import qiskit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qrt_apply.runtime.base import BackendInfo

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "MAX_SHOTS",
    "backend_info",
    "canonical_name",
    "configuration",
    "make_backend",
    "noisy_device",
    "status",
]

DEFAULT_BACKEND = "aer_simulator"
MAX_SHOTS = 100_000  # shots one PUB may ask for, on every backend here
_VERSION = "0.18.2"
_ONLINE_DATE = "2023-01-01T00:00:00Z"
_NOISY_SEED = 5


@dataclass(frozen=True)
class _Device:
    num_qubits: int
    noisy: bool
    basis_gates: tuple[str, ...]
    coupling_map: tuple[tuple[int, int], ...] | None
    description: str


_AER_BASIS = (
    "ccx", "cp", "crx", "cry", "crz", "cswap", "csx", "cu", "cu1", "cu2", "cu3", "cx", "cy", "cz",
    "delay", "ecr", "h", "id", "mcx", "measure", "p", "r", "reset", "rx", "rxx", "ry", "ryy", "rz",
    "rzx", "rzz", "s", "sdg", "swap", "sx", "sxdg", "t", "tdg", "u", "u1", "u2", "u3", "unitary",
    "x", "y", "z",
)  # fmt: skip
_LINE_5 = tuple((a, b) for i in range(4) for a, b in ((i, i + 1), (i + 1, i)))

_DEVICES: dict[str, _Device] = {
    "aer_simulator": _Device(
        24, False, _AER_BASIS, None, "Noiseless qiskit-aer simulator, all-to-all connectivity"
    ),
    "fake_noisy_5q": _Device(
        5,
        True,
        ("cx", "id", "rz", "sx", "x", "measure", "reset", "delay"),
        _LINE_5,
        "Simulated 5-qubit device: line coupling 0-1-2-3-4, seeded depolarising, thermal and "
        "readout errors (qiskit GenericBackendV2, seed 5) on qiskit-aer",
    ),
}
_ALIASES = {"ibmq_qasm_simulator": "aer_simulator"}

#: Every name the runtime answers to, aliases included, in listing order.
BACKEND_NAMES: tuple[str, ...] = ("aer_simulator", "ibmq_qasm_simulator", "fake_noisy_5q")


def canonical_name(name: str) -> str:
    """The backend that executes ``name`` (``ibmq_qasm_simulator`` -> ``aer_simulator``).

    Raises ``KeyError`` for a name this runtime does not have."""
    if name in _DEVICES:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise KeyError(f"unknown backend {name!r}; available: {', '.join(BACKEND_NAMES)}")


def _device(name: str) -> _Device:
    return _DEVICES[canonical_name(name)]


def backend_info(name: str) -> BackendInfo:
    """Summary of backend ``name``, reported under the name as given."""
    dev = _device(name)
    return BackendInfo(
        name=name,
        num_qubits=dev.num_qubits,
        simulator=True,
        noisy=dev.noisy,
        max_shots=MAX_SHOTS,
    )


def configuration(name: str) -> dict[str, Any]:
    """IBM backend configuration JSON (``GET /backends/{name}/configuration``, reference section 3).

    Accepted by qiskit-terra's ``QasmBackendConfiguration.from_dict`` and complete enough for
    ``IBMBackend`` (``online_date``, ``max_experiments``, ``coupling_map`` always present)."""
    dev = _device(name)
    coupling = [list(edge) for edge in dev.coupling_map] if dev.coupling_map else None
    return {
        "backend_name": name,
        "backend_version": _VERSION,
        "description": dev.description,
        "n_qubits": dev.num_qubits,
        "basis_gates": list(dev.basis_gates),
        "gates": [],
        "local": False,
        "simulator": True,
        "conditional": False,
        "open_pulse": False,
        "memory": True,
        "max_shots": MAX_SHOTS,
        "max_experiments": 300,
        "coupling_map": coupling,
        "online_date": _ONLINE_DATE,
        "n_registers": 1,
        "supported_instructions": list(dev.basis_gates),
        "credits_required": False,
        "processor_type": {"family": "simulator", "revision": 1},
        # Not in IBM's format (clients ignore unknown keys): lets qrt's HTTP client tell noisy devices.
        "noisy": dev.noisy,
    }


def status(name: str) -> dict[str, Any]:
    """IBM backend status JSON (``GET /backends/{name}/status``): always operational and active.

    ``length_queue`` is 0 here; a caller that knows its queue may overwrite it."""
    _device(name)
    return {
        "backend_name": name,
        "backend_version": _VERSION,
        "state": True,
        "status": "active",
        "message": "",
        "length_queue": 0,
    }


def make_backend(name: str) -> Any:
    """A fresh qiskit ``BackendV2`` (an ``AerSimulator``) to execute on for backend ``name``."""
    from qiskit_aer import AerSimulator

    device = noisy_device(name)
    return AerSimulator() if device is None else AerSimulator.from_backend(device)


def noisy_device(name: str) -> Any:
    """The qiskit device model whose noise backend ``name`` simulates (None if noiseless)."""
    dev = _DEVICES[canonical_name(name)]
    if not dev.noisy:
        return None
    from qiskit.providers.fake_provider import GenericBackendV2

    return GenericBackendV2(
        num_qubits=dev.num_qubits,
        basis_gates=[g for g in dev.basis_gates if g not in ("measure", "reset", "delay")],
        coupling_map=[list(edge) for edge in dev.coupling_map or ()],
        seed=_NOISY_SEED,
    )
