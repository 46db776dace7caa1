"""The simulated backends: names, aliases, IBM configuration/status JSON, executing backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qrt_apply.engine import backends
from qrt_apply.runtime.base import BackendInfo

from support.oldclient import require_old_python

# What reference section 3 says the old client needs from GET /backends/{name}/configuration.
REQUIRED_CONFIG_KEYS = {
    "backend_name",
    "backend_version",
    "n_qubits",
    "basis_gates",
    "gates",
    "local",
    "simulator",
    "conditional",
    "open_pulse",
    "memory",
    "max_shots",
    "coupling_map",
    "max_experiments",
    "online_date",
}


def test_names_and_aliases() -> None:
    assert set(backends.__all__) >= {
        "BACKEND_NAMES",
        "canonical_name",
        "backend_info",
        "configuration",
        "status",
        "make_backend",
    }
    assert backends.BACKEND_NAMES[0] == "aer_simulator"
    assert {"aer_simulator", "ibmq_qasm_simulator", "fake_noisy_5q"} <= set(backends.BACKEND_NAMES)
    assert backends.canonical_name("ibmq_qasm_simulator") == "aer_simulator"
    assert backends.canonical_name("fake_noisy_5q") == "fake_noisy_5q"
    with pytest.raises(KeyError, match="unknown backend 'ibm_nowhere'"):
        backends.canonical_name("ibm_nowhere")
    for call in (backends.configuration, backends.status, backends.backend_info):
        with pytest.raises(KeyError):
            call("ibm_nowhere")


def test_backend_info_is_reported_under_the_name_given() -> None:
    assert backends.backend_info("ibmq_qasm_simulator") == BackendInfo(
        name="ibmq_qasm_simulator", num_qubits=24, simulator=True, noisy=False, max_shots=100_000
    )
    noisy = backends.backend_info("fake_noisy_5q")
    assert (noisy.num_qubits, noisy.noisy, noisy.operational) == (5, True, True)


@pytest.mark.parametrize("name", backends.BACKEND_NAMES)
def test_configuration_has_what_the_old_client_needs(name: str) -> None:
    config = backends.configuration(name)
    assert REQUIRED_CONFIG_KEYS <= set(config)
    assert config["backend_name"] == name
    assert config["online_date"].endswith("Z")
    assert config["max_experiments"] > 0 and config["max_shots"] > 0
    assert json.loads(json.dumps(config)) == config


def test_noisy_device_has_a_line_coupling_map() -> None:
    config = backends.configuration("fake_noisy_5q")
    assert config["n_qubits"] == 5
    edges = {tuple(e) for e in config["coupling_map"]}
    assert edges == {(i, i + 1) for i in range(4)} | {(i + 1, i) for i in range(4)}
    assert {"cx", "rz", "sx", "x"} <= set(config["basis_gates"])
    assert backends.configuration("aer_simulator")["coupling_map"] is None


def test_status_is_operational_and_active() -> None:
    status = backends.status("ibmq_qasm_simulator")
    assert status["state"] is True
    assert status["status"] == "active"
    assert status["length_queue"] == 0
    assert status["backend_version"]


def test_make_backend() -> None:
    noiseless = backends.make_backend("ibmq_qasm_simulator")
    assert noiseless.name == "aer_simulator"
    assert noiseless.options.noise_model is None
    noisy = backends.make_backend("fake_noisy_5q")
    assert noisy.num_qubits == 5
    assert not noisy.options.noise_model.is_ideal()
    # seeded: two builds give the same noise (up to the random ids of the error objects)
    assert _without_ids(noisy.options.noise_model.to_dict()) == _without_ids(
        backends.make_backend("fake_noisy_5q").options.noise_model.to_dict()
    )


def _without_ids(noise: dict[str, Any]) -> str:
    errors = [{k: v for k, v in error.items() if k != "id"} for error in noise["errors"]]
    return repr(errors)  # holds numpy arrays: compare the text


def test_import_is_light() -> None:
    code = (
        "import sys, qrt_apply.engine.backends as b; b.configuration('fake_noisy_5q');"
        "b.status('aer_simulator'); print('qiskit' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.oldclient
def test_old_terra_accepts_the_configuration(tmp_path: Path) -> None:
    python = require_old_python()
    path = tmp_path / "configs.json"
    path.write_text(json.dumps({n: backends.configuration(n) for n in backends.BACKEND_NAMES}))
    script = """
import json, sys
from qiskit.providers.models import QasmBackendConfiguration
for name, cfg in json.load(open(sys.argv[1])).items():
    c = QasmBackendConfiguration.from_dict(cfg)
    print(name, c.n_qubits, c.max_experiments, c.online_date)
"""
    proc = subprocess.run(
        [str(python), "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        f"{n} {backends.backend_info(n).num_qubits} 300 2023-01-01T00:00:00Z"
        for n in backends.BACKEND_NAMES
    ]
