"""JSON encoding of runtime inputs and results in qiskit-ibm-runtime's ``__type__`` convention.

``RuntimeEncoder`` writes, and ``RuntimeDecoder`` reads, ``{"__type__": T, "__value__": V}``
objects, byte-compatible with the qiskit-ibm-runtime 0.11/0.12 clients (reference section 5):

=====================  ===========================================================================
``datetime``           ``isoformat()``
``complex``            ``[re, im]``
``ndarray``            base64 of zlib-compressed ``np.save`` bytes; a plain list for object dtype
``set``                a list
``QuantumCircuit``     base64 of zlib-compressed QPY (qiskit 2.x writes QPY >= 13, which the old
                       clients, reading QPY <= 9, cannot load; they only ever *send* circuits)
``Parameter``          base64 of a QPY PARAMETER record
``ParameterExpression`` base64 of a QPY v3 PARAMETER_EXPR record (sympy ``srepr`` text)
``Instruction``        a QPY circuit holding the single instruction
``Result``             ``to_dict()``;  ``NoiseModel``: ``to_dict()``;  ``to_json``: ``to_json()``
``spmatrix``           base64 of ``scipy.sparse.save_npz``
``PrimitiveResult``    (written only) ``pub_results`` + ``metadata``; each ``SamplerPubResult`` or
                       ``PubResult`` is ``data`` (a ``DataBin``: ``field_names``, ``shape``,
                       ``fields``) + ``metadata``; a ``BitArray`` is ``array`` (ndarray) + ``num_bits``
``settings``           ``__module__``/``__class__`` plus the object's ``settings`` dict
=====================  ===========================================================================

Decoding is safe: nothing a payload names is imported or called. ``settings`` objects are rebuilt
only from :data:`SETTINGS_ALLOW_LIST` (qiskit.quantum_info classes); ``np.load`` never unpickles;
expressions are parsed by an allow-listed AST walk, never ``eval``. A payload that cannot be decoded
raises ``RuntimeApiError(status=400)``. An unknown ``__type__`` is kept as the raw dict, as the
client does. numpy, scipy and qiskit are imported only when a value needs them, so the HTTP client
can import this module on the ``plan`` path.
"""

from __future__ import annotations

import base64
import copy
import datetime
import io
import json
import sys
import zlib
from collections.abc import Callable
from typing import Any

import qrt_apply.runtime._qpy_symbols as symbols
from qrt_apply.errors import RuntimeApiError

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "SETTINGS_ALLOW_LIST",
    "RuntimeDecoder",
    "RuntimeEncoder",
    "circuit_value",
    "dumps",
    "loads",
]

#: ``settings`` classes the decoder rebuilds: class name -> (module prefix, importable module).
SETTINGS_ALLOW_LIST: dict[str, str] = {
    "SparsePauliOp": "qiskit.quantum_info",
    "PauliList": "qiskit.quantum_info",
    "Pauli": "qiskit.quantum_info",
    "Operator": "qiskit.quantum_info",
    "Statevector": "qiskit.quantum_info",
}

#: A zlib payload inflating beyond this is refused (decompression bombs).
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


def _loaded(module: str) -> Any:
    """The module if something already imported it, else None.

    An object of a type from a module nobody imported cannot exist, so the encoder never needs to
    import a module just to test ``isinstance``."""
    return sys.modules.get(module)


def _b64(data: bytes, compress: bool) -> str:
    return base64.standard_b64encode(zlib.compress(data) if compress else data).decode("ascii")


def _unb64(text: Any, decompress: bool) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    raw = base64.standard_b64decode(text.encode("ascii"))
    if not decompress:
        return raw
    inflater = zlib.decompressobj()
    out = inflater.decompress(raw, MAX_DECOMPRESSED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"payload inflates beyond {MAX_DECOMPRESSED_BYTES} bytes")
    return out


def _set_int_keys_flag(obj: Any) -> Any:
    if isinstance(obj, dict):
        for key, val in list(obj.items()):
            if isinstance(key, int):
                obj["__int_keys__"] = True
            _set_int_keys_flag(val)
    return obj


def _cast_int_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        flagged = obj.pop("__int_keys__", False)
        for key in list(obj):
            _cast_int_keys(obj[key])
            if flagged and isinstance(key, str):
                try:
                    obj[int(key)] = obj.pop(key)
                except ValueError:
                    pass
    return obj


def _qpy_dump(circuit: Any, version: int | None = None) -> bytes:
    from qiskit import qpy

    buf = io.BytesIO()
    if version is None:
        qpy.dump(circuit, buf, metadata_serializer=RuntimeEncoder)
    else:
        qpy.dump(circuit, buf, metadata_serializer=RuntimeEncoder, version=version)
    return buf.getvalue()


def circuit_value(circuit: Any, *, max_qpy_version: int | None = None) -> dict[str, Any]:
    """The ``QuantumCircuit`` object for ``circuit``, in QPY no newer than ``max_qpy_version``
    (a server may read only up to some version; None: the installed qiskit's own)."""
    from qiskit import qpy

    version = None
    if max_qpy_version is not None:
        version = max(qpy.QPY_COMPATIBILITY_VERSION, min(max_qpy_version, qpy.QPY_VERSION))
    return {"__type__": "QuantumCircuit", "__value__": _b64(_qpy_dump(circuit, version), True)}


def _qpy_load(data: bytes) -> Any:
    from qiskit import qpy

    circuits = qpy.load(io.BytesIO(data), metadata_deserializer=RuntimeDecoder)
    if len(circuits) != 1:
        raise ValueError(f"expected one circuit in the QPY payload, found {len(circuits)}")
    return circuits[0]


class RuntimeEncoder(json.JSONEncoder):
    """JSON encoder understanding the qiskit-ibm-runtime ``__type__`` objects."""

    def default(self, obj: Any) -> Any:  # noqa: C901 - one flat type switch, as the client's
        if isinstance(obj, datetime.date):
            return {"__type__": "datetime", "__value__": obj.isoformat()}
        if isinstance(obj, complex):
            return {"__type__": "complex", "__value__": [obj.real, obj.imag]}
        np = _loaded("numpy")
        if np is not None and isinstance(obj, np.ndarray):
            if obj.dtype == object:
                return {"__type__": "ndarray", "__value__": obj.tolist()}
            buf = io.BytesIO()
            np.save(buf, obj, allow_pickle=False)
            return {"__type__": "ndarray", "__value__": _b64(buf.getvalue(), True)}
        if np is not None and isinstance(obj, np.generic):
            return obj.item()  # numpy scalars: plain JSON numbers / booleans
        if isinstance(obj, (set, frozenset)):
            return {"__type__": "set", "__value__": list(obj)}
        qiskit = _loaded("qiskit")
        if qiskit is not None:
            encoded = _encode_qiskit(obj)
            if encoded is not None:
                return encoded
        if hasattr(obj, "to_json"):
            return {"__type__": "to_json", "__value__": obj.to_json()}
        aer_noise = _loaded("qiskit_aer.noise")
        if aer_noise is not None and isinstance(obj, aer_noise.NoiseModel):
            return {"__type__": "NoiseModel", "__value__": obj.to_dict()}
        if hasattr(obj, "settings") and not isinstance(obj, type):
            return {
                "__type__": "settings",
                "__module__": type(obj).__module__,
                "__class__": type(obj).__name__,
                "__value__": _set_int_keys_flag(copy.deepcopy(obj.settings)),
            }
        sparse = _loaded("scipy.sparse")
        if sparse is not None and sparse.issparse(obj):
            buf = io.BytesIO()
            sparse.save_npz(buf, obj, compressed=False)
            return {"__type__": "spmatrix", "__value__": _b64(buf.getvalue(), False)}
        return super().default(obj)


def _encode_qiskit(obj: Any) -> dict[str, Any] | None:
    """The ``__type__`` object for a qiskit value, or None when ``obj`` is not one."""
    from qiskit.circuit import Instruction, Parameter, ParameterExpression, QuantumCircuit
    from qiskit.circuit.parametertable import ParameterView
    from qiskit.result import Result

    if isinstance(obj, Result):
        return {"__type__": "Result", "__value__": obj.to_dict()}
    if isinstance(obj, QuantumCircuit):
        return {"__type__": "QuantumCircuit", "__value__": _b64(_qpy_dump(obj), True)}
    if isinstance(obj, Parameter):
        return {"__type__": "Parameter", "__value__": _b64(symbols.write_parameter(obj), False)}
    if isinstance(obj, ParameterExpression):
        value = _b64(symbols.write_parameter_expression(obj), False)
        return {"__type__": "ParameterExpression", "__value__": value}
    if isinstance(obj, ParameterView):
        return list(obj)  # type: ignore[return-value]
    if isinstance(obj, Instruction):
        circuit = QuantumCircuit(obj.num_qubits, obj.num_clbits)
        circuit.append(obj, circuit.qubits, circuit.clbits)
        return {"__type__": "Instruction", "__value__": _b64(_qpy_dump(circuit), True)}
    return _encode_primitive_result(obj)


def _encode_primitive_result(obj: Any) -> dict[str, Any] | None:
    """V2 primitive results as the current client reads them: ``PrimitiveResult`` of
    ``SamplerPubResult``/``PubResult`` of ``DataBin`` of ``BitArray``s or ndarrays."""
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult

    if isinstance(obj, BitArray):
        return {"__type__": "BitArray", "__value__": {"array": obj.array, "num_bits": obj.num_bits}}
    if isinstance(obj, DataBin):
        value = {"field_names": list(obj), "shape": list(obj.shape), "fields": dict(obj.items())}
        return {"__type__": "DataBin", "__value__": value}
    if isinstance(obj, PubResult):  # SamplerPubResult is a PubResult too
        kind = "SamplerPubResult" if isinstance(obj, SamplerPubResult) else "PubResult"
        return {"__type__": kind, "__value__": {"data": obj.data, "metadata": obj.metadata}}
    if isinstance(obj, PrimitiveResult):
        value = {"pub_results": list(obj), "metadata": obj.metadata}
        return {"__type__": "PrimitiveResult", "__value__": value}
    return None


class RuntimeDecoder(json.JSONDecoder):
    """JSON decoder rebuilding ``__type__`` objects from an allow-list only (400 otherwise)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("object_hook", None)
        super().__init__(*args, object_hook=self.object_hook, **kwargs)
        self._vectors: dict[str, Any] = {}

    def object_hook(self, obj: dict[str, Any]) -> Any:
        if "__type__" not in obj or "__value__" not in obj:
            return obj
        obj_type = obj["__type__"]
        decode = _DECODERS.get(obj_type) if isinstance(obj_type, str) else None
        if decode is None:
            return obj
        try:
            return decode(self, obj)
        except RuntimeApiError:
            raise
        except Exception as exc:  # every malformed payload is the caller's error, not ours
            raise RuntimeApiError(
                f"cannot decode {obj_type!r} value: {type(exc).__name__}: {exc}", status=400
            ) from None


def _dec_datetime(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return datetime.datetime.fromisoformat(obj["__value__"])


def _dec_complex(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    real, imag = obj["__value__"]
    return complex(float(real), float(imag))


def _dec_ndarray(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    import numpy as np

    value = obj["__value__"]
    if isinstance(value, list):
        return np.array(value)
    return np.load(io.BytesIO(_unb64(value, True)), allow_pickle=False)


def _dec_set(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return set(obj["__value__"])


def _dec_circuit(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return _qpy_load(_unb64(obj["__value__"], True))


def _dec_parameter(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return symbols.read_parameter(_unb64(obj["__value__"], False))


def _dec_expression(dec: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return symbols.read_parameter_expression(_unb64(obj["__value__"], False), dec._vectors)


def _dec_instruction(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    circuit = _qpy_load(_unb64(obj["__value__"], True))
    if len(circuit.data) != 1:
        raise ValueError("an Instruction payload must hold exactly one instruction")
    return circuit.data[0].operation


def _dec_settings(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    class_name, module = obj.get("__class__"), obj.get("__module__")
    prefix = SETTINGS_ALLOW_LIST.get(class_name) if isinstance(class_name, str) else None
    if prefix is None or not isinstance(module, str) or not module.startswith(prefix + "."):
        raise RuntimeApiError(
            f"refusing to rebuild settings object {module}.{class_name}: only "
            f"{', '.join(sorted(SETTINGS_ALLOW_LIST))} from qiskit.quantum_info are accepted",
            status=400,
        )
    settings = _cast_int_keys(obj["__value__"])
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise ValueError("settings must be an object with string keys")
    import qiskit.quantum_info as qi

    return getattr(qi, str(class_name))(**settings)  # class_name is one of the allow-listed names


def _dec_result(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    from qiskit.result import Result

    return Result.from_dict(obj["__value__"])


def _dec_spmatrix(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    import scipy.sparse

    return scipy.sparse.load_npz(io.BytesIO(_unb64(obj["__value__"], False)))


def _dec_to_json(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    return obj["__value__"]


def _dec_noise_model(_: RuntimeDecoder, obj: dict[str, Any]) -> Any:
    from qiskit_aer.noise import NoiseModel

    return NoiseModel.from_dict(obj["__value__"])


_DECODERS: dict[str, Callable[[RuntimeDecoder, dict[str, Any]], Any]] = {
    "datetime": _dec_datetime,
    "complex": _dec_complex,
    "ndarray": _dec_ndarray,
    "set": _dec_set,
    "QuantumCircuit": _dec_circuit,
    "Parameter": _dec_parameter,
    "ParameterExpression": _dec_expression,
    "Instruction": _dec_instruction,
    "settings": _dec_settings,
    "Result": _dec_result,
    "spmatrix": _dec_spmatrix,
    "to_json": _dec_to_json,
    "NoiseModel": _dec_noise_model,
}


def dumps(obj: Any) -> str:
    """Encode ``obj`` with :class:`RuntimeEncoder`."""
    return json.dumps(obj, cls=RuntimeEncoder)


def loads(text: str | bytes) -> Any:
    """Decode ``text`` with :class:`RuntimeDecoder`; bad payloads raise ``RuntimeApiError(400)``."""
    try:
        return json.loads(text, cls=RuntimeDecoder)
    except RecursionError:
        raise RuntimeApiError("payload nested too deeply", status=400) from None
    except ValueError as exc:
        raise RuntimeApiError(f"invalid JSON payload: {exc}", status=400) from None
