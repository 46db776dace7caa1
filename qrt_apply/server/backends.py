"""The simulated backends of the local runtime: names, IBM configuration/status JSON, executors.

``aer_simulator`` (alias ``ibmq_qasm_simulator``) is a noiseless AerSimulator; ``fake_noisy_5q`` is a
5-qubit device with a line coupling map and a fixed, seeded noise model. qiskit is imported only in
``make_backend``.
"""

from __future__ import annotations

from typing import Any

from qrt_apply.runtime.base import BackendInfo

__all__ = [
    "BACKEND_NAMES",
    "backend_info",
    "canonical_name",
    "configuration",
    "make_backend",
    "status",
]

BACKEND_NAMES: tuple[str, ...] = ("aer_simulator", "ibmq_qasm_simulator", "fake_noisy_5q")


def canonical_name(name: str) -> str:
    """The backend that executes ``name`` (``ibmq_qasm_simulator`` -> ``aer_simulator``); KeyError if unknown."""
    raise NotImplementedError


def backend_info(name: str) -> BackendInfo:
    """Summary of backend ``name`` (reported under the name as given)."""
    raise NotImplementedError


def configuration(name: str) -> dict[str, Any]:
    """IBM backend configuration JSON (``GET /backends/{name}/configuration``)."""
    raise NotImplementedError


def status(name: str) -> dict[str, Any]:
    """IBM backend status JSON (``GET /backends/{name}/status``)."""
    raise NotImplementedError


def make_backend(name: str) -> Any:
    """A qiskit ``BackendV2`` to execute on for backend ``name``."""
    raise NotImplementedError
