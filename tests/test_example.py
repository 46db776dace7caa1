"""The README's quick start on the example repository, for real: embedded runtime, qiskit-aer,
child processes. Then edits converge again."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from projects import copy_example, qrt

pytestmark = pytest.mark.slow


def exact_energy() -> float:
    from qiskit.circuit.library import real_amplitudes
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    circuit = real_amplitudes(2, reps=2)
    observable = SparsePauliOp.from_list([("II", 1), ("IZ", 2), ("XI", 3)])
    result = StatevectorEstimator().run([(circuit, observable, [0, 1, 1, 2, 3, 5])]).result()
    return float(result[0].data.evs)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_example(tmp_path_factory.mktemp("example"))
    done = qrt(root, "apply", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def jobs(root: Path) -> dict:
    return json.loads((root / "qrt.lock").read_text())["jobs"]


def test_every_example_job_completed(applied: Path) -> None:
    records = jobs(applied)
    assert set(records) == {
        "job.bell/bell",
        "job.bell/bell-100",
        "job.bell/bell-1000",
        "job.energy/real-amplitudes",
        "job.ghz/sweep",
    }
    assert {r["status"] for r in records.values()} == {"COMPLETED"}


def test_bell_counts_hold_only_00_and_11(applied: Path) -> None:
    for address, shots in (
        ("job.bell/bell", 4000),
        ("job.bell/bell-100", 100),
        ("job.bell/bell-1000", 1000),
    ):
        result = jobs(applied)[address]["result"]
        counts = result["results"][0]["data"]["c"]["counts"]
        assert set(counts) <= {"00", "11"} and set(counts) == {"00", "11"}, counts
        assert sum(counts.values()) == shots


def test_estimator_matches_statevector_within_shot_noise(applied: Path) -> None:
    data = jobs(applied)["job.energy/real-amplitudes"]["result"]["results"][0]["data"]
    value, std = float(data["evs"]), float(data["stds"])
    exact = exact_energy()
    assert math.isclose(exact, 1.5556, abs_tol=1e-3)
    assert std > 0
    assert abs(value - exact) <= 5 * std, (value, exact, std)


def test_uploaded_program_result_and_interim_results(applied: Path) -> None:
    record = jobs(applied)["job.ghz/sweep"]
    assert record["result"]["shots"] == 2000
    assert set(record["result"]["fidelities"]) == {"2", "3", "4"}
    assert [r["num_qubits"] for r in record["interim_results"]] == [2, 3, 4]
    assert record["session_id"] == record["id"]


def test_then_nothing_to_do_and_edits_converge(applied: Path) -> None:
    done = qrt(applied, "plan", "--detailed-exitcode")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes." in done.stdout
    manifest = applied / "manifests" / "programs.yaml"
    manifest.write_text(manifest.read_text().replace("visibility: private", "visibility: public"))
    done = qrt(applied, "plan", "--detailed-exitcode")
    assert done.returncode == 2
    assert "program.ghz-sweep  set-visibility: private → public" in done.stdout
    assert "Plan: 1 to change visibility." in done.stdout
    assert qrt(applied, "apply", "--auto-approve").returncode == 0
    assert qrt(applied, "plan", "--detailed-exitcode").returncode == 0
