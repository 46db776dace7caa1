"""Manifest loading: schemas, file:line errors, $file confinement, matrix expansion, references."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrt_apply.errors import ManifestError
from qrt_apply.manifests import load_desired_state

from projects import copy_example, small_project, write


def load(root: Path):
    return load_desired_state(root, root / "manifests")


def test_example_repository_loads(tmp_path: Path) -> None:
    desired = load(copy_example(tmp_path))
    assert set(desired.programs) == {"ghz-sweep"}
    assert set(desired.batches) == {"bell", "energy", "ghz"}
    names = [job.address for job in desired.jobs()]
    assert "job.bell/bell-100" in names and "job.bell/bell-1000" in names


def test_matrix_keeps_whole_string_types_and_names(tmp_path: Path) -> None:
    desired = load(small_project(tmp_path))
    jobs = {job.name: job for job in desired.batches["bell"].jobs}
    assert set(jobs) == {"plain", "shots-10", "shots-20"}
    assert jobs["shots-10"].inputs["pubs"][0]["shots"] == 10
    assert jobs["plain"].inputs["pubs"][0]["circuit"].startswith("OPENQASM 2.0;")
    assert jobs["plain"].files == {
        "circuits/bell.qasm": jobs["shots-10"].files["circuits/bell.qasm"]
    }


def _expect_error(root: Path, text: str, line: int, fragment: str) -> None:
    write(root, "manifests/bad.yaml", text)
    with pytest.raises(ManifestError) as info:
        load(root)
    assert info.value.path == "manifests/bad.yaml"
    assert info.value.line == line, str(info.value)
    assert fragment in str(info.value)


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: extra
        program: sampler
        colour: blue
        jobs: [{name: a, inputs: {pubs: [{circuit: "OPENQASM 2.0;"}]}}]
        """,
        5,
        "unknown key 'colour'",
    )


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(tmp_path, "apiVersion: qrt/v1\nkind: [Program\nname: x\n", 3, "invalid YAML")


def test_bad_name_and_type(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: Program
        name: Bad_Name
        source: ../programs/echo.py
        max_execution_time: 10
        """,
        3,
        "name",
    )
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: Program
        name: ok
        source: ../programs/echo.py
        max_execution_time: soon
        """,
        5,
        "max_execution_time",
    )


def test_file_outside_repository_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    small_project(root)
    (tmp_path / "secret.qasm").write_text("OPENQASM 2.0;")
    _expect_error(
        root,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: escape
        program: sampler
        jobs:
          - name: a
            inputs:
              pubs:
                - circuit: {$file: ../../secret.qasm}
        """,
        9,
        "outside the repository",
    )


def test_duplicate_names_and_keys(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: Program
        name: echo
        source: ../programs/echo.py
        max_execution_time: 10
        """,
        3,
        "defined twice",
    )
    _expect_error(
        tmp_path,
        "apiVersion: qrt/v1\nkind: Program\nname: x\nname: y\n",
        4,
        "duplicate key",
    )


def test_unknown_program_reference(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: orphan
        program: nowhere
        jobs: [{name: a, inputs: {}}]
        """,
        4,
        "neither a built-in",
    )


def test_inputs_checked_against_program_parameters(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: wrong
        program: echo
        jobs:
          - name: a
            inputs: {iterations: 0}
        """,
        6,
        "do not match program 'echo' parameters",
    )


def test_matrix_variable_must_be_in_name(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: sweep
        program: echo
        jobs:
          - name: a
            matrix: {n: [1, 2]}
            inputs: {iterations: "${n}"}
        """,
        6,
        "must appear in the name",
    )


def test_estimator_needs_observables(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: est
        program: estimator
        jobs:
          - name: a
            inputs: {pubs: [{circuit: {library: real_amplitudes, num_qubits: 2}}]}
        """,
        6,
        "needs observables",
    )


def test_digest_follows_file_bytes_and_inputs(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    before = {j.address: j.digest for j in load(root).jobs()}
    (root / "circuits/bell.qasm").write_text((root / "circuits/bell.qasm").read_text() + "// c\n")
    after = {j.address: j.digest for j in load(root).jobs()}
    changed = {a for a in before if before[a] != after[a]}
    assert changed == {"job.bell/plain", "job.bell/shots-10", "job.bell/shots-20"}


def test_description_edit_does_not_touch_job_digests(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    before = load(root)
    text = (root / "manifests/all.yaml").read_text().replace("Echoes its inputs.", "Echoes.")
    (root / "manifests/all.yaml").write_text(text)
    after = load(root)
    assert before.programs["echo"].metadata_digest != after.programs["echo"].metadata_digest
    assert [j.digest for j in before.jobs()] == [j.digest for j in after.jobs()]


def test_circuit_text_needs_an_openqasm_header(tmp_path: Path) -> None:
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: headless
        program: sampler
        jobs:
          - name: a
            inputs: {pubs: [{circuit: "include \\"qelib1.inc\\"; qreg q[1];"}]}
        """,
        6,
        "a circuit is OpenQASM text",
    )


def test_matrix_variables_reach_job_options(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    write(
        root,
        "manifests/seeds.yaml",
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: seeds
        program: sampler
        options: {default_shots: 10}
        jobs:
          - name: s-${seed}
            matrix: {seed: [1, 2]}
            options: {seed_simulator: "${seed}"}
            inputs: {pubs: [{circuit: {$file: ../circuits/bell.qasm}}]}
        """,
    )
    jobs = {job.name: job for job in load(root).batches["seeds"].jobs}
    assert jobs["s-1"].options == {"default_shots": 10, "seed_simulator": 1}
    assert jobs["s-2"].params()["options"] == {"default_shots": 10, "seed_simulator": 2}
    assert jobs["s-1"].digest != jobs["s-2"].digest
