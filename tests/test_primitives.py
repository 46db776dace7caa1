"""Built-in sampler and estimator on qiskit-aer: V2 PUBs, V1 inputs of the old client, bad input."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qrt_apply.engine.primitives import BUILTIN_PROGRAMS, execute_builtin
from qrt_apply.errors import RuntimeApiError
from qrt_apply.runtime.encoding import dumps, loads

from projects import BELL
from support.oldclient import require_old_python

FIXTURES = Path(__file__).parent / "fixtures"
BELL_QASM3 = """// a Bell pair
OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] meas;
h q[0];
cx q[0], q[1];
meas = measure q;
"""
ANSATZ = {"library": "real_amplitudes", "num_qubits": 2, "reps": 2}
HAMILTONIAN = [["II", 1], ["IZ", 2], ["XI", 3]]
THETA = [0, 1, 1, 2, 3, 5]
EXACT = 1.5556  # the documentation's value, checked against StatevectorEstimator below


def exact_expectation(values: Any, observable: Any = HAMILTONIAN) -> Any:
    from qiskit.circuit.library import real_amplitudes
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    op = SparsePauliOp.from_list([(p, c) for p, c in observable])
    pub = (real_amplitudes(2, reps=2), op, values)
    return StatevectorEstimator().run([pub]).result()[0].data.evs


def within_shot_noise(value: Any, exact: Any, std: Any) -> bool:
    """|value - exact| <= 5 standard errors (a 1 in 1.7 million miss for Gaussian noise)."""
    value, exact, std = np.asarray(value), np.asarray(exact), np.asarray(std)
    assert np.all(std > 0)
    return bool(np.all(np.abs(value - exact) <= 5 * std))


def sampler(pubs: list[Any], backend: str = "aer_simulator", **options: Any) -> Any:
    return execute_builtin("sampler", {"pubs": pubs, "options": options}, backend)


def estimator(pubs: list[Any], backend: str = "aer_simulator", **options: Any) -> Any:
    return execute_builtin("estimator", {"pubs": pubs, "options": options}, backend)


def test_builtin_programs() -> None:
    assert BUILTIN_PROGRAMS == ("sampler", "estimator")


def test_documentation_value_is_exact() -> None:
    assert float(exact_expectation(THETA)) == pytest.approx(EXACT, abs=1e-4)


# ---- V2 sampler --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "register"), [(BELL, "c"), (BELL_QASM3, "meas")])
def test_v2_sampler_bell_counts(text: str, register: str) -> None:
    result = sampler([{"circuit": text, "shots": 2000}], seed=11)
    assert json.loads(json.dumps(result)) == result  # plain JSON
    (pub,) = result["results"]
    data = pub["data"][register]
    assert set(data["counts"]) == {"00", "11"}
    assert sum(data["counts"].values()) == data["num_shots"] == 2000
    assert data["num_bits"] == 2 and data["shape"] == []
    assert pub["metadata"]["shots"] == 2000
    assert result["metadata"] == {
        "version": 2,
        "backend": "aer_simulator",
        "seed": 11,
        "optimization_level": 1,
    }


def test_v2_sampler_is_reproducible_with_a_seed() -> None:
    first = sampler([BELL], seed=5, default_shots=500)
    assert first == sampler([BELL], seed=5, default_shots=500)
    assert first["results"][0]["data"]["c"]["num_shots"] == 500


def test_v2_sampler_pub_forms_and_parameter_sweep() -> None:
    ghz = {"library": "ghz", "num_qubits": 3, "measure_all": True}
    ansatz = {"library": "real_amplitudes", "num_qubits": 2, "reps": 1, "measure_all": True}
    sweep = [[0, 0, 0, 0], [math.pi, 0, 0, 0], [0, math.pi, 0, 0]]
    result = sampler([ghz, [ansatz, sweep, 300], (BELL, None, 100)], seed=3)
    ghz_counts = result["results"][0]["data"]["meas"]["counts"]
    assert set(ghz_counts) == {"000", "111"}
    swept = result["results"][1]["data"]["meas"]
    assert swept["shape"] == [3] and swept["num_shots"] == 300
    assert swept["counts"] == [{"00": 300}, {"11": 300}, {"10": 300}]  # qubit 0 is rightmost
    assert result["results"][2]["data"]["c"]["num_shots"] == 100


def test_v2_sampler_on_the_noisy_device_shows_noise() -> None:
    result = sampler([{"circuit": BELL, "shots": 4000}], "fake_noisy_5q", seed=1)
    counts = result["results"][0]["data"]["c"]["counts"]
    assert sum(counts.values()) == 4000
    assert counts["00"] + counts["11"] > 3600
    assert counts.get("01", 0) + counts.get("10", 0) > 0


# ---- V2 estimator ------------------------------------------------------------------------------


def test_v2_estimator_documentation_example() -> None:
    result = estimator([{"circuit": ANSATZ, "observables": HAMILTONIAN, "parameter_values": THETA}])
    (pub,) = result["results"]
    evs, stds = pub["data"]["evs"], pub["data"]["stds"]
    assert isinstance(evs, float) and pub["data"]["shape"] == []
    assert stds == pub["metadata"]["target_precision"] == 0.015625
    assert within_shot_noise(evs, exact_expectation(THETA), stds)


def test_v2_estimator_arrays_broadcast() -> None:
    sweep = [THETA, [0] * 6, [1] * 6]
    pub = [ANSATZ, HAMILTONIAN, sweep, 0.01]  # tuple form with a precision
    result = estimator([pub], seed=2)["results"][0]
    assert result["data"]["shape"] == [3]
    assert within_shot_noise(
        result["data"]["evs"], exact_expectation(sweep), result["data"]["stds"]
    )
    # observables array (2, 1) x parameters (3,) -> (2, 3)
    obs = [[{"ZZ": 1}], [{"XX": 1}]]
    pub2 = {"circuit": ANSATZ, "observables": obs, "parameter_values": sweep, "precision": 0.02}
    result = estimator([pub2], seed=2)["results"][0]
    assert result["data"]["shape"] == [2, 3]
    exact = [exact_expectation(sweep, [["ZZ", 1]]), exact_expectation(sweep, [["XX", 1]])]
    assert within_shot_noise(result["data"]["evs"], exact, result["data"]["stds"])


def test_v2_estimator_exact_with_precision_zero() -> None:
    pub = {
        "circuit": ANSATZ,
        "observables": "XI",
        "parameter_values": {f"θ[{i}]": v for i, v in enumerate(THETA)},
    }
    result = execute_builtin("estimator", {"pubs": [pub], "precision": 0}, "aer_simulator")
    expected = exact_expectation(THETA, [["XI", 1]])
    assert result["results"][0]["data"]["evs"] == pytest.approx(float(expected), abs=1e-9)


def test_v2_estimator_on_the_noisy_device_follows_the_layout() -> None:
    pub = {"circuit": ANSATZ, "observables": HAMILTONIAN, "parameter_values": THETA}
    result = estimator([pub], "fake_noisy_5q", seed=4, default_precision=0.02)["results"][0]
    assert result["metadata"]["shots"] >= 2500
    # the device's errors are small: the shot-based estimate stays near the exact value
    assert abs(result["data"]["evs"] - EXACT) < 5 * result["data"]["stds"] + 0.15


# ---- V1 inputs, as the old client sends them ---------------------------------------------------


def fixture(name: str) -> Any:
    return loads((FIXTURES / f"oldclient_{name}.json").read_text())


def test_v1_sampler_documentation_bell() -> None:
    call = fixture("sampler_bell")
    result = execute_builtin(call["program_id"], call["params"], call["backend"])
    (quasi,) = result["quasi_dists"]
    assert set(quasi) == {"0x0", "0x3"}
    assert sum(quasi.values()) == pytest.approx(1.0)
    assert result["metadata"] == [{"shots": 4000}]


def test_v1_sampler_parameters_and_run_options() -> None:
    call = fixture("sampler_params")
    call["params"]["run_options"]["seed_simulator"] = 9
    result = execute_builtin("sampler", call["params"], "ibmq_qasm_simulator")
    assert result["quasi_dists"][0] == {"0x0": 1.0}
    assert set(result["quasi_dists"][1]) == {"0x0", "0x3"}
    assert result["quasi_dists"][2] == {"0x3": 1.0}
    assert result["metadata"] == [{"shots": 2000}] * 3


def test_v1_estimator_documentation_example() -> None:
    call = fixture("estimator_doc")
    result = execute_builtin("estimator", call["params"], "ibmq_qasm_simulator")
    assert isinstance(result["values"], np.ndarray) and result["values"].shape == (1,)
    (meta,) = result["metadata"]
    assert meta["shots"] == 4000
    std = math.sqrt(meta["variance"] / meta["shots"])
    assert within_shot_noise(result["values"][0], exact_expectation(THETA), std)


def test_v1_estimator_indices() -> None:
    call = fixture("estimator_multi")
    result = execute_builtin("estimator", call["params"], "aer_simulator")
    exact = [
        exact_expectation(THETA),
        exact_expectation(THETA, [["ZZ", 1]]),
        exact_expectation([0] * 6),
    ]
    stds = [math.sqrt(m["variance"] / m["shots"]) for m in result["metadata"]]
    assert within_shot_noise(result["values"], np.ravel(exact), stds)


def test_v1_transpilation_settings() -> None:
    call = fixture("estimator_doc")
    settings = call["params"]["transpilation_settings"]
    settings.update(coupling_map=[[0, 1], [1, 2]], basis_gates=["cx", "rz", "sx", "x"])
    result = execute_builtin("estimator", call["params"], "aer_simulator")
    std = math.sqrt(result["metadata"][0]["variance"] / 4000)
    assert within_shot_noise(result["values"][0], exact_expectation(THETA), std)
    call = fixture("estimator_doc")
    settings = call["params"]["transpilation_settings"]
    settings.update(initial_layout=[3, 4], skip_transpilation=True)
    result = execute_builtin("estimator", call["params"], "fake_noisy_5q")
    assert abs(result["values"][0] - EXACT) < 0.5
    settings.update(initial_layout=None, layout_method="bogus")
    with pytest.raises(RuntimeApiError, match="invalid transpilation settings"):
        execute_builtin("estimator", call["params"], "fake_noisy_5q")


def test_v1_sampler_on_the_noisy_device() -> None:
    call = fixture("sampler_bell")
    call["params"]["run_options"]["seed_simulator"] = 2
    result = execute_builtin("sampler", call["params"], "fake_noisy_5q")
    assert set(result["quasi_dists"][0]) - {"0x0", "0x3"}  # noise: some 01/10 outcomes


def test_v1_plain_inputs_without_qpy() -> None:
    params = {"circuits": [BELL], "run_options": {"shots": 100, "seed_simulator": 1}}
    result = execute_builtin("sampler", params, "aer_simulator")
    assert result["metadata"] == [{"shots": 100}]
    est = {"circuits": [ANSATZ], "observables": [HAMILTONIAN], "parameter_values": [THETA]}
    values = execute_builtin("estimator", est, "aer_simulator")["values"]
    assert values.shape == (1,)


@pytest.mark.oldclient
def test_old_client_decodes_v1_results(tmp_path: Path) -> None:
    python = require_old_python()
    for name in ("sampler_bell", "estimator_doc"):
        call = fixture(name)
        call["params"]["run_options"]["seed_simulator"] = 8
        result = execute_builtin(call["program_id"], call["params"], call["backend"])
        (tmp_path / f"{call['program_id']}.json").write_text(dumps(result))
    script = """
import json, sys
from qiskit_ibm_runtime.utils.sampler_result_decoder import SamplerResultDecoder
from qiskit_ibm_runtime.utils.estimator_result_decoder import EstimatorResultDecoder
s = SamplerResultDecoder.decode(open(sys.argv[1]).read())
e = EstimatorResultDecoder.decode(open(sys.argv[2]).read())
print(json.dumps({"quasi": {str(k): v for k, v in s.quasi_dists[0].items()},
                  "shots": s.metadata[0]["shots"], "values": e.values.tolist()}))
"""
    proc = subprocess.run(
        [
            str(python),
            "-c",
            script,
            str(tmp_path / "sampler.json"),
            str(tmp_path / "estimator.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert set(got["quasi"]) == {"0", "3"}  # QuasiDistribution keys are ints
    assert got["shots"] == 4000
    assert len(got["values"]) == 1 and abs(got["values"][0] - EXACT) < 0.3


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "params", "backend", "message"),
    [
        ("vqe", {"pubs": [BELL]}, "aer_simulator", "not a built-in"),
        ("sampler", {"circuit": BELL}, "aer_simulator", "need 'pubs'"),
        ("sampler", {"pubs": [BELL]}, "ibm_nowhere", "unknown backend"),
        ("sampler", {"pubs": []}, "aer_simulator", "pubs must be a list"),
        (
            "sampler",
            {"pubs": [BELL], "options": {"shots": 5}},
            "aer_simulator",
            "unknown primitive option",
        ),
        ("sampler", {"pubs": [BELL], "extra": 1}, "aer_simulator", "unknown sampler input"),
        (
            "sampler",
            {"pubs": [{"circuit": BELL, "observables": "ZZ"}]},
            "aer_simulator",
            "unknown sampler PUB key",
        ),
        (
            "sampler",
            {"pubs": [{"circuit": BELL, "shots": 0}]},
            "aer_simulator",
            "shots must be",
        ),
        (
            "sampler",
            {"pubs": [{"circuit": BELL, "shots": 10**9}]},
            "aer_simulator",
            "shots must be",
        ),
        ("sampler", {"pubs": [ANSATZ]}, "aer_simulator", "measures nothing"),
        ("sampler", {"pubs": ["qreg q[1];"]}, "aer_simulator", "OPENQASM"),
        (
            "sampler",
            {"pubs": ['OPENQASM 2.0;\ninclude "/etc/passwd";']},
            "aer_simulator",
            "invalid OpenQASM 2",
        ),
        (
            "sampler",
            {"pubs": ["OPENQASM 3.0;\nqubit q; foo q;"]},
            "aer_simulator",
            "invalid OpenQASM 3",
        ),
        (
            "sampler",
            {"pubs": [{"library": "__import__"}]},
            "aer_simulator",
            "unknown library circuit",
        ),
        (
            "sampler",
            {"pubs": [{"library": "ghz", "num_qubits": 6, "measure_all": True}]},
            "fake_noisy_5q",
            "num_qubits must be",
        ),
        (
            "sampler",
            {"pubs": [{"library": "real_amplitudes", "num_qubits": 2, "bogus": 1}]},
            "aer_simulator",
            "library real_amplitudes",
        ),
        (
            "sampler",
            {"pubs": [BELL], "options": {"seed": -1}},
            "aer_simulator",
            "seed_simulator",
        ),
        ("estimator", {"pubs": [[ANSATZ]]}, "aer_simulator", "needs observables"),
        ("estimator", {"pubs": [[ANSATZ, "ZZZ", THETA]]}, "aer_simulator", "acts on 3 qubits"),
        ("estimator", {"pubs": [[ANSATZ, "ZQ", THETA]]}, "aer_simulator", "invalid observable"),
        (
            "estimator",
            {"pubs": [[ANSATZ, [["ZZ", [0, 1]]], THETA]]},
            "aer_simulator",
            "not Hermitian",
        ),
        ("estimator", {"pubs": [[ANSATZ, "ZZ"]]}, "aer_simulator", "no values were given"),
        ("estimator", {"pubs": [[ANSATZ, "ZZ", [1, 2]]]}, "aer_simulator", "axis of 6 values"),
        ("estimator", {"pubs": [[ANSATZ, "ZZ", THETA, 0]]}, "fake_noisy_5q", "precision 0"),
        (
            "estimator",
            {"pubs": [[ANSATZ, ["ZZ", "XX", "YY"], [THETA, THETA]]]},
            "aer_simulator",
            "invalid PUB",
        ),
        (
            "estimator",
            {"circuits": [ANSATZ], "parameter_values": [THETA]},
            "aer_simulator",
            "non-empty list of observables",
        ),
        (
            "sampler",
            {"circuits": [BELL], "circuit_indices": [1]},
            "aer_simulator",
            "circuit_indices",
        ),
        (
            "sampler",
            {"circuits": [BELL], "run_options": {"shots": -3}},
            "aer_simulator",
            "run_options.shots",
        ),
    ],
)
def test_bad_input_is_a_400(program: str, params: Any, backend: str, message: str) -> None:
    with pytest.raises(RuntimeApiError, match=message) as info:
        execute_builtin(program, params, backend)
    assert info.value.status == 400
