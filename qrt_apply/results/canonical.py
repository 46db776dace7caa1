"""Results as plain, reviewable JSON: the runtime's ``__type__`` encodings decoded.

A runtime answers ``GET /jobs/{id}/results`` in qiskit-ibm-runtime's ``RuntimeEncoder`` form
(``runtime/encoding.py``): numpy arrays as base64 of zlib-compressed ``.npy`` bytes, complex numbers
as pairs, qiskit objects as QPY or ``settings``. ``readable(value)`` turns that into JSON a reviewer
can read in ``qrt.lock``:

=========================  ===========================================================================
``ndarray``                nested lists of numbers (a complex number is ``[re, im]``)
``complex``                ``[re, im]``
``datetime`` / ``set``     ISO 8601 text / a list
``PrimitiveResult``        ``{"results": [PUB, ...], "metadata": {...}}``, the embedded runtime's shape:
                           a sampler PUB's ``data`` holds, per classical register, ``counts``,
                           ``num_shots``, ``num_bits`` and ``shape``; an estimator PUB's ``data``
                           holds ``evs`` and ``stds`` as numbers (nested lists for a shaped PUB)
``BitArray``               ``{"counts": {"00": n, ...}, "num_shots", "num_bits", "shape"}``
``settings``               ``{"type": CLASS, "settings": {...}}`` (a SparsePauliOp, ...)
``QuantumCircuit``         ``{"type": "QuantumCircuit", "qasm3": TEXT}``
``Parameter``/expression   its text (``"θ"``, ``"2*θ + 1"``)
``to_json`` / ``Result``   the JSON they carry
=========================  ===========================================================================

Anything else keeps its ``__type__`` wrapper with a readable ``__value__``. The function is
idempotent (plain JSON passes through unchanged), so results recorded by older versions can be
passed through it again. numpy and qiskit are imported only when a value needs them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["readable", "readable_text"]


def readable_text(text: str) -> Any:
    """A result body (the runtime's text) as readable JSON; text that is not JSON stays text."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text
    return readable(value)


def readable(value: Any) -> Any:
    """``value`` with every ``__type__`` encoding replaced by plain JSON (see the module docstring)."""
    if isinstance(value, list):
        return [readable(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__type__" in value and "__value__" in value:
        kind = value["__type__"]
        convert = _CONVERTERS.get(kind) if isinstance(kind, str) else None
        if convert is not None:
            try:
                return convert(value)
            except Exception:  # an encoding this version cannot read stays as it was, readable
                pass
        return {key: readable(item) for key, item in value.items()}
    return {key: readable(item) for key, item in value.items() if key != "__int_keys__"}


def _plain(value: Any) -> Any:
    """A Python value from numpy's ``tolist()`` as JSON: complex numbers become ``[re, im]``."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, complex):
        return [value.real, value.imag]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _array(value: Any) -> Any:
    """The numpy array of an ``ndarray`` encoding (``__value__`` base64 or a plain list)."""
    import numpy as np

    from qrt_apply.runtime.encoding import RuntimeDecoder

    decoded = RuntimeDecoder().object_hook({"__type__": "ndarray", "__value__": value})
    return np.asarray(decoded)


def _ndarray(obj: dict[str, Any]) -> Any:
    raw = obj["__value__"]
    if isinstance(raw, list):
        return readable(raw)
    return _plain(_array(raw).tolist())


def _complex(obj: dict[str, Any]) -> Any:
    real, imag = obj["__value__"]
    return [float(real), float(imag)]


def _set(obj: dict[str, Any]) -> Any:
    items = readable(list(obj["__value__"]))
    try:
        return sorted(items)
    except TypeError:
        return items


def _datetime(obj: dict[str, Any]) -> Any:
    return str(obj["__value__"])


def _to_json(obj: dict[str, Any]) -> Any:
    inner = obj["__value__"]
    if isinstance(inner, str):
        try:
            return readable(json.loads(inner))
        except json.JSONDecodeError:
            return inner
    return readable(inner)


def _carried(obj: dict[str, Any]) -> Any:
    return readable(obj["__value__"])


def _settings(obj: dict[str, Any]) -> Any:
    return {"type": str(obj.get("__class__")), "settings": readable(obj["__value__"])}


def _decoded_text(obj: dict[str, Any]) -> Any:
    from qrt_apply.runtime.encoding import RuntimeDecoder

    return str(RuntimeDecoder().object_hook(dict(obj)))


def _circuit(obj: dict[str, Any]) -> Any:
    from qiskit import qasm3

    from qrt_apply.runtime.encoding import RuntimeDecoder

    circuit = RuntimeDecoder().object_hook(dict(obj))
    return {"type": obj["__type__"], "qasm3": qasm3.dumps(circuit)}


def _instruction(obj: dict[str, Any]) -> Any:
    from qrt_apply.runtime.encoding import RuntimeDecoder

    operation = RuntimeDecoder().object_hook(dict(obj))
    return {
        "type": "Instruction",
        "name": operation.name,
        "num_qubits": operation.num_qubits,
        "params": [readable(_param_value(p)) for p in operation.params],
    }


def _param_value(param: Any) -> Any:
    return param if isinstance(param, (int, float, str, bool)) else str(param)


def _primitive_result(obj: dict[str, Any]) -> Any:
    inner = obj["__value__"]
    return {
        "results": [readable(pub) for pub in inner.get("pub_results", [])],
        "metadata": readable(inner.get("metadata", {})),
    }


def _pub_result(obj: dict[str, Any]) -> Any:
    inner = obj["__value__"]
    return {
        "data": readable(inner.get("data", {})),
        "metadata": readable(inner.get("metadata", {})),
    }


def _data_bin(obj: dict[str, Any]) -> Any:
    inner = obj["__value__"]
    fields = inner.get("fields", {})
    data = {str(name): readable(field) for name, field in fields.items()}
    if any(isinstance(field, Mapping) and "counts" in field for field in data.values()):
        return data  # sampler: each register already says its own shape
    data["shape"] = list(inner.get("shape", ()))
    return data


def _bit_array(obj: dict[str, Any]) -> Any:
    """Counts of a qiskit ``BitArray`` (``array``: uint8 of shape ``(*shape, shots, bytes)``, bits
    big-endian, bit 0 the lowest of the last byte), per index of its shape, as qiskit counts them."""
    import numpy as np

    inner = obj["__value__"]
    array = _array(inner["array"]["__value__"]).astype(np.uint8)
    num_bits = int(inner["num_bits"])
    shape = tuple(array.shape[:-2])
    num_shots = int(array.shape[-2])

    def counts(rows: Any) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in rows:
            key = format(int.from_bytes(bytes(row), "big"), f"0{num_bits}b")[-num_bits:]
            found[key] = found.get(key, 0) + 1
        return dict(sorted(found.items()))

    def nest(index: tuple[int, ...]) -> Any:
        if len(index) == len(shape):
            return counts(array[index] if index else array)
        return [nest((*index, i)) for i in range(shape[len(index)])]

    return {"counts": nest(()), "num_shots": num_shots, "num_bits": num_bits, "shape": list(shape)}


def _sparse(obj: dict[str, Any]) -> Any:
    from qrt_apply.runtime.encoding import RuntimeDecoder

    matrix = RuntimeDecoder().object_hook(dict(obj)).tocoo()
    return {
        "type": "spmatrix",
        "shape": list(matrix.shape),
        "row": matrix.row.tolist(),
        "col": matrix.col.tolist(),
        "data": _plain(matrix.data.tolist()),
    }


_CONVERTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ndarray": _ndarray,
    "complex": _complex,
    "set": _set,
    "datetime": _datetime,
    "to_json": _to_json,
    "Result": _carried,
    "NoiseModel": _carried,
    "settings": _settings,
    "Parameter": _decoded_text,
    "ParameterExpression": _decoded_text,
    "QuantumCircuit": _circuit,
    "Instruction": _instruction,
    "PrimitiveResult": _primitive_result,
    "SamplerPubResult": _pub_result,
    "PubResult": _pub_result,
    "DataBin": _data_bin,
    "BitArray": _bit_array,
    "spmatrix": _sparse,
}
