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


def test_matrix_variable_must_be_in_a_name_template(tmp_path: Path) -> None:
    # A name without variables derives job names from the values (tests/test_sweeps.py); a
    # template must name every variable.
    small_project(tmp_path)
    _expect_error(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: sweep
        program: echo
        jobs:
          - name: a-${n}
            matrix: {n: [1, 2], m: [3]}
            inputs: {iterations: "${n}"}
        """,
        6,
        "matrix variable 'm' must appear in the name",
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


# A YAML file that exercises what the two parsers might disagree on: scalar types, styles, block
# scalars, flow and block collections, comments, several documents, CRLF-free multi-line strings.
_PARSER_EDGES = """\
# leading comment
apiVersion: qrt/v1
kind: JobBatch
name: edges
program: sampler
tags: [a, "b", 'c', 1x, yes-no]
options: {default_shots: 0x10, seed_simulator: 017, precision: 1.5e-3, flag: ~, switch: off}
jobs:
  - name: folded
    inputs:
      text: >
        folded
        lines

      literal: |-
        keep
          indent
      when: 2001-12-14
      stamp: 2001-12-14t21:59:43.10-05:00
      big: 123456789012345678901234567890
      inf: .inf
      quoted: "tab\\tand \\u00e9"
      empty: []
      nested: {a: [1, {b: [2, 3]}], c: {}}
---
---
kind: Second
list:
- x
-   - y
    - z
"""


def test_c_and_pure_parsers_agree_on_data_and_lines(tmp_path: Path) -> None:
    from qrt_apply.manifests.yamldocs import HAVE_LIBYAML, load_documents

    if not HAVE_LIBYAML:
        pytest.skip("PyYAML was built without libyaml")
    copy_example(tmp_path / "example")
    small_project(tmp_path / "small")
    write(tmp_path, "edges/edges.yaml", _PARSER_EDGES)
    files = sorted(tmp_path.rglob("*.yaml"))
    assert len(files) >= 4
    for file in files:
        text = file.read_text("utf-8")
        fast = load_documents(text, file.name)
        pure = load_documents(text, file.name, pure=True)
        assert fast == pure, file
        assert fast and all(doc.lines for doc in fast), file
    edges = load_documents(_PARSER_EDGES, "edges.yaml")
    assert edges[0].lines[("jobs", 0, "inputs", "literal")] == 15
    assert edges[1].lines[("list", 1, 1)] == 31
    assert edges[0].data["jobs"][0]["inputs"]["literal"] == "keep\n  indent"


def test_limits_come_from_qrt_yaml(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    (root / "qrt.yaml").write_text("limits:\n  max_matrix_jobs: 1\n")
    with pytest.raises(ManifestError, match=r"makes 2 jobs, more than the limit of 1"):
        load(root)
    (root / "qrt.yaml").write_text("limits:\n  max_matrix_jobs: 0\n")
    from qrt_apply.errors import ConfigError

    with pytest.raises(ConfigError, match="limits.max_matrix_jobs must be a positive integer"):
        load(root)
    (root / "qrt.yaml").write_text("limits:\n  max_colours: 3\n")
    with pytest.raises(ConfigError, match="unknown key limits.max_colours"):
        load(root)


def test_program_validator_is_built_once_per_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qrt_apply.manifests import loader

    built: list[str] = []
    real = loader.program_validator

    def counting(program):  # type: ignore[no-untyped-def]
        built.append(program.name)
        return real(program)

    monkeypatch.setattr(loader, "program_validator", counting)
    root = small_project(tmp_path)
    write(
        root,
        "manifests/more.yaml",
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: sweep
        program: echo
        jobs:
          - name: it-${n}
            matrix: {n: [1, 2, 3, 4, 5]}
            inputs: {iterations: "${n}"}
        """,
    )
    desired = load(root)
    assert len(desired.batches["sweep"].jobs) == 5
    assert built == ["echo"]
