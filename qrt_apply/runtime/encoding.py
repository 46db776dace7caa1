"""JSON encoding of runtime inputs and results: qiskit-ibm-runtime's ``__type__``/``__value__`` convention.

``RuntimeEncoder`` writes, and ``RuntimeDecoder`` reads, ``{"__type__": T, "__value__": V}`` objects for
``datetime``, ``complex``, ``ndarray``, ``set``, ``QuantumCircuit`` (zlib QPY), ``Parameter``,
``ParameterExpression``, ``Instruction``, ``to_json``, ``Result``, ``NoiseModel``, ``spmatrix`` and
``settings`` -- the same wire format as the qiskit-ibm-runtime 0.11/0.12 clients.

Decoding is safe: nothing a payload names is imported or called. ``settings`` objects are rebuilt only
from an allow-list (``SparsePauliOp``, ``PauliList``, ``Pauli``, ...); anything else raises
``RuntimeApiError(status=400)``. numpy and qiskit are imported only when a value needs them, so the
HTTP client can import this module on the ``plan`` path.
"""

from __future__ import annotations

import json
from typing import Any

from qrt_apply.errors import RuntimeApiError

__all__ = ["RuntimeDecoder", "RuntimeEncoder", "dumps", "loads"]


class RuntimeEncoder(json.JSONEncoder):
    """JSON encoder understanding the qiskit-ibm-runtime ``__type__`` objects."""


class RuntimeDecoder(json.JSONDecoder):
    """JSON decoder rebuilding ``__type__`` objects from an allow-list only (400 otherwise)."""


def dumps(obj: Any) -> str:
    """Encode ``obj`` with :class:`RuntimeEncoder`."""
    return json.dumps(obj, cls=RuntimeEncoder)


def loads(text: str) -> Any:
    """Decode ``text`` with :class:`RuntimeDecoder`; a bad payload raises ``RuntimeApiError(400)``."""
    try:
        return json.loads(text, cls=RuntimeDecoder)
    except ValueError as exc:
        raise RuntimeApiError(f"invalid JSON payload: {exc}", status=400) from None
