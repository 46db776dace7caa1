"""RuntimeEncoder/RuntimeDecoder: round trips, real old-client payloads, the safety allow-list."""

from __future__ import annotations

import base64
import datetime
import io
import json
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import RXGate
from qiskit.quantum_info import Operator, Pauli, PauliList, SparsePauliOp, Statevector
from qiskit.result import Result

from qrt_apply.errors import RuntimeApiError
from qrt_apply.runtime import encoding
from qrt_apply.runtime.encoding import RuntimeDecoder, RuntimeEncoder, dumps, loads

from support.oldclient import require_old_python

FIXTURES = Path(__file__).parent / "fixtures"


def run_old(script: str, *args: str) -> str:
    python = require_old_python()
    proc = subprocess.run(
        [python, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def test_public_surface() -> None:
    assert set(encoding.__all__) >= {"RuntimeEncoder", "RuntimeDecoder", "dumps", "loads"}
    assert json.loads(dumps({"a": [1, 2.5, None, "x"]})) == {"a": [1, 2.5, None, "x"]}


def test_round_trip_of_every_type() -> None:
    t = Parameter("t")
    vec = ParameterVector("θ", 3)
    expr = (2 * t + vec[2]) / 3 - t**2 + t.sin()
    values: dict[str, Any] = {
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "complex": 1 - 2j,
        "ndarray": np.arange(6.0).reshape(2, 3),
        "ndarray_complex": np.array([1j, 2]),
        "ndarray_object": np.array([1, "a"], dtype=object),
        "set": {1, 2},
        "parameter": t,
        "expr": expr,
        "circuit": _bell(),
        "instruction": RXGate(0.25),
        "spo": SparsePauliOp.from_list([("IZ", 2), ("XI", 3)]),
        "paulis": PauliList(["XY", "ZI"]),
        "pauli": Pauli("-XYZ"),
        "operator": Operator(Pauli("X")),
        "state": Statevector([0, 1]),
        "sparse": scipy.sparse.csr_matrix(np.eye(3)),
        "np_scalar": np.float64(0.5),
        "np_int": np.int64(7),
    }
    back = loads(dumps(values))
    assert back["datetime"] == values["datetime"]
    assert back["complex"] == 1 - 2j
    np.testing.assert_array_equal(back["ndarray"], values["ndarray"])
    assert back["ndarray"].dtype == np.float64
    np.testing.assert_array_equal(back["ndarray_complex"], values["ndarray_complex"])
    assert back["ndarray_object"].tolist() == ["1", "a"]  # as the client: np.array(list)
    assert back["set"] == {1, 2}
    assert back["parameter"] == t
    assert back["expr"].bind({p: 0.5 for p in back["expr"].parameters}).numeric() == (
        pytest.approx(float(expr.bind({t: 0.5, vec[2]: 0.5}).numeric()))
    )
    assert back["circuit"] == values["circuit"]
    assert back["instruction"].name == "rx" and float(back["instruction"].params[0]) == 0.25
    assert back["spo"] == values["spo"]
    assert back["paulis"] == values["paulis"]
    assert back["pauli"] == values["pauli"]
    assert back["operator"] == values["operator"]
    assert back["state"] == values["state"]
    assert (back["sparse"] != values["sparse"]).nnz == 0
    assert back["np_scalar"] == 0.5 and back["np_int"] == 7


def test_result_and_to_json_round_trip() -> None:
    result = Result.from_dict(
        {
            "backend_name": "aer_simulator",
            "backend_version": "1",
            "qobj_id": "q",
            "job_id": "j",
            "success": True,
            "results": [{"shots": 4, "success": True, "data": {"counts": {"0x3": 4}}}],
        }
    )

    class HasJson:
        def to_json(self) -> str:
            return '{"k": 1}'

    back = loads(dumps({"result": result, "obj": HasJson()}))
    assert back["result"].get_counts() == {"11": 4}
    assert back["obj"] == '{"k": 1}'


def test_old_client_payloads_decode() -> None:
    """Payloads written by qiskit-ibm-runtime 0.11.3 + qiskit-terra 0.25.1 (QPY version 9)."""
    values = loads((FIXTURES / "oldclient_types.json").read_text())
    assert values["datetime"] == datetime.datetime(2023, 8, 8, 12, 30, tzinfo=datetime.UTC)
    assert values["complex"] == 1.5 - 2j
    np.testing.assert_array_equal(values["ndarray"], np.arange(6.0).reshape(2, 3))
    assert values["ndarray_int"].dtype == np.int32
    assert values["set"] == {1, 2, 3}
    assert values["parameter"].name == "θ"
    expr = values["parameter_expression"]
    assert sorted(p.name for p in expr.parameters) == ["phi", "θ"]
    assert float(expr.bind({p: 1.0 for p in expr.parameters}).numeric()) == pytest.approx(3.0)
    assert values["instruction"].name == "rx"
    assert values["circuit"] == _bell()
    assert values["param_circuit"].num_parameters == 6
    assert values["sparse_pauli_op"] == SparsePauliOp.from_list([("II", 1), ("IZ", 2), ("XI", 3)])
    assert values["pauli_list"] == PauliList(["XY", "ZI"])
    assert values["pauli"] == Pauli("XYZ")
    assert (values["spmatrix"] != scipy.sparse.eye(3)).nnz == 0
    assert values["result"].results[0].data.counts == {"0x0": 4, "0x3": 6}


@pytest.mark.parametrize(
    "name",
    ["sampler_bell", "sampler_params", "estimator_doc", "estimator_multi"],
)
def test_old_client_primitive_inputs_decode(name: str) -> None:
    call = loads((FIXTURES / f"oldclient_{name}.json").read_text())
    params = call["params"]
    assert all(isinstance(c, QuantumCircuit) for c in params["circuits"])
    for circuit, parameters in zip(params["circuits"], params["parameters"], strict=True):
        assert [p.name for p in parameters] == [p.name for p in circuit.parameters]
    if "observables" in params:
        assert all(isinstance(o, SparsePauliOp) for o in params["observables"])


def _settings(module: str, cls: str, value: Any) -> str:
    payload = {"__type__": "settings", "__module__": module, "__class__": cls, "__value__": value}
    return json.dumps({"x": payload})


@pytest.mark.parametrize(
    ("module", "cls"),
    [
        ("os", "system"),
        ("qrt_never_imported_module", "Evil"),
        ("subprocess", "Popen"),
        ("builtins", "eval"),
        ("subprocess", "SparsePauliOp"),  # allowed name, wrong module
        ("qiskit.circuit", "QuantumCircuit"),  # qiskit, but not on the allow-list
        ("qiskit.quantum_info", "Clifford"),
    ],
)
def test_settings_outside_the_allow_list_are_refused(module: str, cls: str) -> None:
    before = set(sys.modules)
    with pytest.raises(RuntimeApiError) as info:
        loads(_settings(module, cls, {"command": "touch /tmp/qrt-pwned"}))
    assert info.value.status == 400
    assert "refusing" in str(info.value)
    assert "qrt_never_imported_module" not in sys.modules
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in {"os", "subprocess"}}


def test_allowed_settings_with_bad_arguments_are_a_400() -> None:
    module = "qiskit.quantum_info.operators.symplectic.pauli"
    with pytest.raises(RuntimeApiError) as info:
        loads(_settings(module, "Pauli", {"data": "QQ"}))
    assert info.value.status == 400
    with pytest.raises(RuntimeApiError):
        loads(_settings(module, "Pauli", {"__init__": 1, "data": "X"}))


_MARK: list[str] = []


def _trip() -> None:
    _MARK.append("unpickled")


class _Tripwire:
    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_trip, ())


def test_ndarray_payload_is_never_unpickled() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([_Tripwire()], dtype=object), allow_pickle=True)
    text = base64.b64encode(zlib.compress(buf.getvalue())).decode()
    with pytest.raises(RuntimeApiError) as info:
        loads(json.dumps({"__type__": "ndarray", "__value__": text}))
    assert info.value.status == 400
    assert _MARK == []
    pickle.loads(pickle.dumps(_Tripwire()))  # the tripwire is armed: unpickling does fire it
    assert _MARK == ["unpickled"]
    _MARK.clear()


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "MAX_DECOMPRESSED_BYTES", 1024)
    text = base64.b64encode(zlib.compress(b"\0" * 10_000)).decode()
    with pytest.raises(RuntimeApiError, match="inflates beyond"):
        loads(json.dumps({"__type__": "QuantumCircuit", "__value__": text}))


def _expression_record(srepr: str, names: list[str]) -> str:
    out = [struct.pack("!QQ", len(names), len(srepr.encode())), srepr.encode()]
    for name in names:
        raw = name.encode()
        out += [struct.pack("!ccQ", b"p", b"p", 0), struct.pack("!H16s", len(raw), b"\1" * 16), raw]
    return base64.b64encode(b"".join(out)).decode()


@pytest.mark.parametrize(
    "srepr",
    [
        "__import__('os').system('true')",
        "Symbol('a').__class__",
        "(lambda: 1)()",
        "Symbol('undefined')",
        "open('/etc/passwd')",
        "Pow(Integer(10), Integer(100000000))",  # would be a 100-million-digit integer
    ],
)
def test_expression_text_is_parsed_not_evaluated(srepr: str) -> None:
    value = _expression_record(srepr, ["a"])
    with pytest.raises(RuntimeApiError) as info:
        loads(json.dumps({"__type__": "ParameterExpression", "__value__": value}))
    assert info.value.status == 400


def test_expression_text_in_sympy_srepr_form() -> None:
    value = _expression_record(
        "Add(Mul(Integer(2), Symbol('a')), Pow(Symbol('b'), Rational(1, 2)))", ["a", "b"]
    )
    expr = loads(json.dumps({"__type__": "ParameterExpression", "__value__": value}))
    bound = expr.bind({p: 4.0 for p in expr.parameters})
    assert float(bound.numeric()) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        '{"__type__": "complex", "__value__": "x"}',
        '{"__type__": "datetime", "__value__": 5}',
        '{"__type__": "QuantumCircuit", "__value__": "!!!"}',
        '{"__type__": "Parameter", "__value__": "AAE="}',
        '{"__type__": "set", "__value__": [[1]]}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_payloads_are_a_400(payload: str) -> None:
    with pytest.raises(RuntimeApiError) as info:
        loads(payload)
    assert info.value.status == 400


def test_unknown_type_is_kept_raw_as_the_client_does() -> None:
    raw = {"__type__": "SomethingNew", "__value__": [1]}
    assert loads(json.dumps(raw)) == raw


def test_int_keys_in_settings_are_restored() -> None:
    class Holder:
        settings = {"data": "XZ"}

    text = json.dumps({1: Holder()}, cls=RuntimeEncoder)
    assert json.loads(text)["1"]["__class__"] == "Holder"
    decoded = json.loads(
        _settings("qiskit.quantum_info.x", "Pauli", {"data": "XZ", "__int_keys__": False}),
        cls=RuntimeDecoder,
    )
    assert decoded["x"] == Pauli("XZ")


def test_import_is_light() -> None:
    code = (
        "import sys, qrt_apply.runtime.encoding as e; e.loads(e.dumps({'a': {1, 2}}));"
        "print(sorted(m for m in ('numpy', 'qiskit', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.oldclient
def test_old_client_decodes_what_we_send(tmp_path: Path) -> None:
    t = Parameter("t")
    vec = ParameterVector("θ", 3)
    values = {
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "complex": 1 - 2j,
        "ndarray": np.arange(6.0).reshape(2, 3),
        "set": [1, 2],
        "parameter": t,
        "expr": (2 * t + vec[2]) / 3 - t**2 + t.sin(),
        "spo": SparsePauliOp.from_list([("IZ", 2), ("XI", 3)]),
        "pauli": Pauli("-XYZ"),
        "sparse": scipy.sparse.csr_matrix(np.eye(2)),
        "np_int": np.int64(3),
    }
    path = tmp_path / "ours.json"
    path.write_text(dumps(values))
    script = """
import json, sys
from qiskit_ibm_runtime.utils import RuntimeDecoder
d = json.loads(open(sys.argv[1]).read(), cls=RuntimeDecoder)
e = d["expr"]
print(json.dumps({
    "datetime": d["datetime"].isoformat()[:19], "complex": [d["complex"].real, d["complex"].imag],
    "ndarray": d["ndarray"].tolist(), "parameter": d["parameter"].name,
    "expr": float(e.bind({p: 0.5 for p in e.parameters})),
    "spo": [[l, c.real] for l, c in d["spo"].to_list()], "pauli": str(d["pauli"]),
    "sparse": d["sparse"].toarray().tolist(), "np_int": d["np_int"],
}))
"""
    got = json.loads(run_old(script, str(path)))
    assert got == {
        "datetime": "2024-01-02T03:04:05",
        "complex": [1.0, -2.0],
        "ndarray": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
        "parameter": "t",
        "expr": pytest.approx(0.729425538604203),
        "spo": [["IZ", 2.0], ["XI", 3.0]],
        "pauli": "-XYZ",
        "sparse": [[1.0, 0.0], [0.0, 1.0]],
        "np_int": 3,
    }
