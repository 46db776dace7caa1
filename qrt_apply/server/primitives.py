"""The built-in programs ``sampler`` and ``estimator``, executed on qiskit-aer.

``execute_builtin(program_id, params, backend_name)`` returns the job's return value.

V2 inputs (``params`` has ``pubs``)::

    {"pubs": [PUB, ...], "options": {"default_shots": int, "default_precision": float,
                                     "seed_simulator": int}}
    PUB = {"circuit": C, "observables": O, "parameter_values": [...], "shots": int,
           "precision": float}   # or the tuple form [C, O?, values?, shots|precision?]
    C   = OpenQASM 2/3 text | {"library": NAME, ...args} | QuantumCircuit

V2 result (JSON-able)::

    sampler:   {"results": [{"data": {REG: {"counts": {"00": n, ...}, "num_shots": n,
                                            "num_bits": k}}, "metadata": {...}}, ...],
                "metadata": {...}}
    estimator: {"results": [{"data": {"evs": float|list, "stds": float|list},
                             "metadata": {...}}, ...], "metadata": {...}}

V1 inputs (``params`` has ``circuits``, as qiskit-ibm-runtime 0.11 sends) give V1 results:
sampler ``{"quasi_dists": [...], "metadata": [{"shots": n}, ...]}``, estimator
``{"values": ndarray, "metadata": [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BUILTIN_PROGRAMS", "execute_builtin"]

BUILTIN_PROGRAMS: tuple[str, ...] = ("sampler", "estimator")


def execute_builtin(program_id: str, params: Mapping[str, Any], backend_name: str) -> Any:
    """Run built-in ``program_id`` on ``backend_name`` with decoded ``params``; return the result."""
    raise NotImplementedError
