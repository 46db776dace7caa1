"""Every input error is caught before anything is sent: offline in validate (circuits, library
circuits, observables, parameter values, shots and precision), at plan against the runtime's
backends (widths, shot limits, exact precision). Each message names file, line, job and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qrt_apply.errors import ManifestError
from qrt_apply.manifests import load_desired_state
from qrt_apply.runtime.http_parse import parse_backend

from projects import BELL, qrt, write

HEAD = """\
apiVersion: qrt/v1
kind: JobBatch
name: b
program: {program}
backend: {backend}
jobs:
  - name: j
    inputs:
      pubs:
"""


def project(root: Path, program: str, pub: str, backend: str = "aer_simulator") -> Path:
    """One batch whose one job has one PUB; ``pub`` is its YAML, starting on line 10."""
    write(root, "qrt.yaml", "{}\n")
    write(root, "circuits/bell.qasm", BELL)
    body = HEAD.format(program=program, backend=backend) + "".join(
        f"        {line}\n" for line in pub.strip("\n").splitlines()
    )
    (root / "manifests").mkdir(exist_ok=True)
    (root / "manifests" / "b.yaml").write_text(body)
    return root


def error_of(root: Path) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_desired_state(root, root / "manifests")
    assert info.value.path == "manifests/b.yaml", str(info.value)
    return info.value


RA = "{library: real_amplitudes, num_qubits: 2, reps: 2}"  # 2 qubits, 6 parameters


@pytest.mark.parametrize(
    ("program", "pub", "line", "fragments"),
    [
        (
            "sampler",
            '- circuit: "OPENQASM 2.0;\\ninclude \\"qelib1.inc\\";\\nqreg q[1];\\nhh q[0];"',
            10,
            ["job 'j' inputs.pubs[0].circuit: invalid OpenQASM 2", "'hh' is not defined"],
        ),
        (
            "sampler",
            '- circuit: "OPENQASM 3.0;\\nqubit[1] q;\\nbit[1] c;\\nc[0] = measure q[0]\\n"',
            10,
            ["job 'j' inputs.pubs[0].circuit: invalid OpenQASM 3"],
        ),
        (
            "sampler",
            "- circuit: {library: real_amplitude, num_qubits: 2}",
            10,
            ["unknown library circuit 'real_amplitude'; supported: ", "real_amplitudes"],
        ),
        (
            "sampler",
            "- circuit: {library: real_amplitudes, num_qubits: 2, repz: 2}",
            10,
            ["job 'j' inputs.pubs[0].circuit: library real_amplitudes(", "repz"],
        ),
        (
            "sampler",
            f"- circuit: {RA}\n  parameter_values: [0, 1, 2, 3, 4, 5]",
            10,
            ["the circuit measures nothing; add measurements (or measure_all: true)"],
        ),
        (
            "estimator",
            f"- circuit: {RA}\n  observables: [[XYZ, 1]]\n  parameter_values: [0, 1, 2, 3, 4, 5]",
            11,
            ["job 'j' inputs.pubs[0].observables: observable acts on 3 qubits, the circuit has 2"],
        ),
        (
            "estimator",
            f"- circuit: {RA}\n  observables: [[ZZ, 1]]\n  parameter_values: [0, 1, 2, 3, 4]",
            12,
            [
                "job 'j' inputs.pubs[0].parameter_values: parameter_values must end in an axis "
                "of 6 values"
            ],
        ),
        (
            "estimator",
            f"- circuit: {RA}\n  observables: [[ZZ, 1]]",
            10,
            ["circuit has 6 parameters but no values were given"],
        ),
        (
            "sampler",
            "- circuit: {$file: ../circuits/bell.qasm}\n  shots: 1000000000000",
            11,
            ["job 'j' inputs.pubs[0].shots: shots must be a whole number from 1 to 10,000,000"],
        ),
        (
            "sampler",
            "- circuit: {$file: ../circuits/bell.qasm}\n  shots: 0",
            11,
            ["inputs.pubs[0].shots: shots must be a whole number"],
        ),
        (
            "estimator",
            "- circuit: {library: ghz, num_qubits: 2}\n  observables: [[ZZ, 1]]\n  precision: 2",
            12,
            ["job 'j' inputs.pubs[0].precision: precision must be a number from 0 to 1"],
        ),
        (
            "sampler",
            "- circuit: {$file: ../circuits/bell.qasm}\n  precision: 0.1",
            11,
            ["job 'j' inputs.pubs[0].precision: the sampler takes no 'precision' in a PUB"],
        ),
    ],
)
def test_offline_checks_name_file_line_job_and_field(
    tmp_path: Path, program: str, pub: str, line: int, fragments: list[str]
) -> None:
    error = error_of(project(tmp_path, program, pub))
    for fragment in fragments:
        assert fragment in str(error)
    assert error.line == line, str(error)


def test_a_circuit_file_error_names_the_file_and_its_line(tmp_path: Path) -> None:
    root = project(tmp_path, "sampler", "- circuit: {$file: ../circuits/bell.qasm}")
    (root / "circuits" / "bell.qasm").write_text(BELL.replace("cx q[0], q[1];", "cx q[0] q[1];"))
    error = error_of(root)
    assert error.line == 10
    assert "job 'j' inputs.pubs[0].circuit: invalid OpenQASM 2" in str(error)
    assert "circuits/bell.qasm:6," in str(error) and "<input>" not in str(error)


def test_primitive_options_are_checked(tmp_path: Path) -> None:
    root = project(tmp_path, "sampler", "- circuit: {$file: ../circuits/bell.qasm}")
    text = (root / "manifests" / "b.yaml").read_text()
    (root / "manifests" / "b.yaml").write_text(
        text.replace("jobs:\n", "options: {default_shots: -5}\njobs:\n")
    )
    error = error_of(root)
    assert "job 'j' options.default_shots: shots must be a whole number" in str(error)
    assert error.line == 8  # the job entry (options merge the batch's and the job's)


def test_good_inputs_pass(tmp_path: Path) -> None:
    project(
        tmp_path,
        "estimator",
        f"- circuit: {RA}\n  observables: [[ZZ, 1], [XI, 2]]\n"
        "  parameter_values: [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]]\n  precision: 0.01",
    )
    desired = load_desired_state(tmp_path, tmp_path / "manifests")
    assert [job.address for job in desired.jobs()] == ["job.b/j"]


def test_validate_refuses_before_anything_is_sent(tmp_path: Path) -> None:
    root = project(tmp_path, "sampler", "- circuit: {library: nope, num_qubits: 2}")
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        done = qrt(root, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "manifests/b.yaml:10: job 'j' inputs.pubs[0].circuit: unknown library" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr
    assert not (root / "qrt.lock").exists()
    assert not (root / ".qrt" / "runtime.db").exists()


@pytest.mark.parametrize(
    ("backend", "pub", "fragment"),
    [
        (
            "aer_simulator",
            "- circuit: {library: ghz, num_qubits: 200, measure_all: true}",
            "job 'j' inputs.pubs[0].circuit: the circuit has 200 qubits; backend "
            "'aer_simulator' has 24",
        ),
        (
            "fake_noisy_5q",
            "- circuit: {$file: ../circuits/bell.qasm}\n  shots: 1000000",
            "job 'j' inputs.pubs[0].shots: 1,000,000 shots; backend 'fake_noisy_5q' takes at "
            "most 100,000",
        ),
    ],
)
def test_plan_checks_the_backend_of_the_embedded_runtime(
    tmp_path: Path, backend: str, pub: str, fragment: str
) -> None:
    root = project(tmp_path, "sampler", pub, backend=backend)
    assert qrt(root, "validate").returncode == 0  # offline, the backend is unknown
    for command in (["plan"], ["apply", "--auto-approve"]):
        done = qrt(root, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"manifests/b.yaml:7: {fragment}" in done.stderr, done.stderr
    assert not (root / "qrt.lock").exists()


def test_exact_precision_needs_a_noiseless_simulator(tmp_path: Path) -> None:
    pub = "- circuit: {library: ghz, num_qubits: 2}\n  observables: [[ZZ, 1]]\n  precision: 0"
    root = project(tmp_path, "estimator", pub, backend="fake_noisy_5q")
    done = qrt(root, "plan")
    assert done.returncode == 1
    assert (
        "manifests/b.yaml:7: job 'j' inputs.pubs[0].precision: precision 0 (exact) needs a "
        "noiseless simulator; 'fake_noisy_5q' is not one"
    ) in done.stderr
    project(tmp_path, "estimator", pub, backend="aer_simulator")
    assert qrt(root, "plan").returncode == 0


def test_only_qrt_serve_shot_limits_are_taken_from_a_configuration() -> None:
    ours = {"n_qubits": 24, "simulator": True, "max_shots": 100_000, "noisy": False}
    assert parse_backend("aer_simulator", ours, {}).max_shots == 100_000
    # IBM documents max_shots as no longer enforced: no limit is read from it
    ibm = {"n_qubits": 127, "simulator": False, "max_shots": 100_000}
    assert parse_backend("ibm_x", ibm, {}).max_shots is None


def test_checked_jobs_are_remembered_per_project(tmp_path: Path) -> None:
    root = project(tmp_path, "sampler", "- circuit: {$file: ../circuits/bell.qasm}")
    (root / ".qrt").mkdir()
    load_desired_state(root, root / "manifests")
    cache = json.loads((root / ".qrt" / "checked.json").read_text())
    assert len(cache["jobs"]) == 1 and list(cache["widths"].values()) == [2]
    # an edit that breaks the circuit is checked again, not taken from the cache
    (root / "circuits" / "bell.qasm").write_text(BELL.replace("measure q -> c;", "measure q;"))
    assert "invalid OpenQASM 2" in str(error_of(root))


V1 = """\
apiVersion: qrt/v1
kind: JobBatch
name: b
program: {program}
backend: aer_simulator
jobs:
  - name: j
    inputs:
      circuits:
        - {{library: real_amplitudes, num_qubits: 2, reps: 1}}
        - {{$file: ../circuits/bell.qasm}}
{rest}"""


@pytest.mark.parametrize(
    ("program", "rest", "line", "fragment"),
    [
        (
            "estimator",
            "      observables: [[[ZZ, 1]], [[XXX, 1]]]\n"
            "      circuit_indices: [0, 1]\n"
            "      observable_indices: [0, 1]\n"
            "      parameter_values: [[0, 1, 2, 3], []]\n",
            12,
            "job 'j' inputs.observables[1]: observable acts on 3 qubits, the circuit has 2",
        ),
        (
            "estimator",
            "      observables: [[[ZZ, 1]]]\n"
            "      circuit_indices: [0]\n"
            "      parameter_values: [[0, 1, 2]]\n",
            14,
            "job 'j' inputs.parameter_values[0]: circuits[0] has 4 parameters, got 3 values",
        ),
        (
            "sampler",
            "      circuit_indices: [2]\n",
            12,
            "job 'j' inputs.circuit_indices: must be a list of indices from 0 to 1",
        ),
        (
            "sampler",
            "      circuit_indices: [0]\n      parameter_values: [[0, 1, 2, 3]]\n",
            10,
            "job 'j' inputs.circuits[0]: the circuit measures nothing",
        ),
    ],
)
def test_v1_inputs_are_checked(
    tmp_path: Path, program: str, rest: str, line: int, fragment: str
) -> None:
    root = project(tmp_path, "sampler", "- circuit: {$file: ../circuits/bell.qasm}")
    (root / "manifests" / "b.yaml").write_text(V1.format(program=program, rest=rest))
    error = error_of(root)
    assert fragment in str(error)
    assert error.line == line, str(error)


def test_good_v1_inputs_pass(tmp_path: Path) -> None:
    root = project(tmp_path, "sampler", "- circuit: {$file: ../circuits/bell.qasm}")
    rest = (
        "      observables: [[[ZZ, 1]], [[XI, 2]]]\n"
        "      circuit_indices: [0, 1]\n"
        "      observable_indices: [1, 0]\n"
        "      parameter_values: [[0, 1, 2, 3], []]\n"
    )
    (root / "manifests" / "b.yaml").write_text(V1.format(program="estimator", rest=rest))
    assert len(load_desired_state(root, root / "manifests").jobs()) == 1
