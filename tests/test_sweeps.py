"""Matrix sweeps of any scalar: job names from values or templates, collisions, and a float sweep
on the embedded runtime that converges and reruns only the job whose value changed; ``qrt show
batch.NAME`` lists a batch's jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qrt_apply.errors import ManifestError
from qrt_apply.manifests import load_desired_state
from qrt_apply.manifests.matrix import value_slug

from projects import qrt, write

SWEEP = """\
apiVersion: qrt/v1
kind: JobBatch
name: sweep
program: sampler
backend: aer_simulator
options: {{default_shots: 64, seed_simulator: 7}}
jobs:
  - name: {name}
    matrix: {{theta: {values}}}
    inputs:
      pubs:
        - circuit: {{library: real_amplitudes, num_qubits: 1, reps: 0, measure_all: true}}
          parameter_values: ["${{theta}}"]
"""


# Any value: the inputs of a program not managed here are not checked offline.
ANY = """\
apiVersion: qrt/v1
kind: JobBatch
name: sweep
program: {{id: some-program}}
jobs:
  - name: {name}
    matrix: {{theta: {values}}}
    inputs: {{value: "${{theta}}"}}
"""


def sweep_project(root: Path, values: list, name: str = "ry", template: str = SWEEP) -> Path:
    write(root, "qrt.yaml", "{}\n")
    write(root, "manifests/sweep.yaml", template.format(name=name, values=json.dumps(values)))
    return root


def names(root: Path) -> list[str]:
    desired = load_desired_state(root, root / "manifests")
    return [job.name for job in desired.batches["sweep"].jobs]


@pytest.mark.parametrize(
    ("value", "slug"),
    [
        (0.1, "0p1"),
        (-1, "m1"),
        (-0.25, "m0p25"),
        (2.0, "2p0"),
        (1.5e-7, "1p5em07"),
        (1e20, "1e20"),
        (True, "true"),
        (False, "false"),
        ("Hello World", "hello-world"),
        ([1, 0.5, "x"], "1-0p5-x"),
        ([[1, 2], [3]], "1-2-3"),
    ],
)
def test_value_slugs_are_deterministic(value, slug) -> None:
    assert value_slug(value) == slug


def test_names_derived_from_values_and_from_a_template(tmp_path: Path) -> None:
    root = sweep_project(tmp_path, [0.1, -1, True, "Z basis", [0.5, 2]], template=ANY)
    assert names(root) == ["ry-0p1", "ry-m1", "ry-true", "ry-z-basis", "ry-0p5-2"]
    desired = load_desired_state(tmp_path, tmp_path / "manifests")
    # the value itself, with its type, reaches the inputs
    assert [job.inputs["value"] for job in desired.batches["sweep"].jobs] == [
        0.1,
        -1,
        True,
        "Z basis",
        [0.5, 2],
    ]
    sweep_project(tmp_path, [0.1, 0.2], name="t-${theta}")
    assert names(tmp_path) == ["t-0p1", "t-0p2"]
    sweep_project(tmp_path, [0.1, 0.2], name="t${theta.index}")
    assert names(tmp_path) == ["t0", "t1"]


def _error(root: Path) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_desired_state(root, root / "manifests")
    assert info.value.path == "manifests/sweep.yaml", str(info.value)
    return info.value


def test_colliding_names_are_an_error_naming_both_values(tmp_path: Path) -> None:
    error = _error(sweep_project(tmp_path, [-1, "m1"], template=ANY))
    assert error.line == 6
    assert "theta=-1 and theta=\"m1\" both make the job name 'ry-m1'" in str(error)
    error = _error(sweep_project(tmp_path, ["Up", "up"], name="s-${theta}", template=ANY))
    assert 'theta="Up" and theta="up"' in str(error) and error.line == 6


@pytest.mark.parametrize(
    ("values", "name", "fragment", "line"),
    [
        ("[0.1, .nan]", "ry", "matrix value theta=NaN must be a finite number", 8),
        ("[1, null]", "ry", "jobs.0.matrix.theta.1: None is not of type", 9),
        ("[{a: 1}]", "ry", "jobs.0.matrix.theta.0", 9),
        ('["!!"]', "ry", "gives no name; write a name template with ${theta.index}", 8),
        ("[1, 2]", "ry-${other}", "'theta' must appear in the name", 8),
    ],
)
def test_bad_matrix_values_name_file_and_line(
    tmp_path: Path, values: str, name: str, fragment: str, line: int
) -> None:
    write(tmp_path, "qrt.yaml", "{}\n")
    write(tmp_path, "manifests/sweep.yaml", SWEEP.format(name=name, values=values))
    error = _error(tmp_path)
    assert fragment in str(error)
    assert error.line == line, str(error)


def test_float_sweep_converges_and_reruns_only_the_changed_job(tmp_path: Path) -> None:
    values = [round(0.25 * i, 2) for i in range(12)]
    root = sweep_project(tmp_path, values, name="ry-${theta.index}")
    done = qrt(root, "apply", "--auto-approve", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = json.loads((root / "qrt.lock").read_text())["jobs"]
    assert sorted(jobs) == sorted(f"job.sweep/ry-{i}" for i in range(12))
    assert {rec["status"] for rec in jobs.values()} == {"COMPLETED"}
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 0  # converged

    shown = qrt(root, "show", "batch.sweep")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 12 and all("COMPLETED" in line for line in lines)
    assert lines[0].startswith("job.sweep/ry-0 ") and lines[3].startswith("job.sweep/ry-11 ")
    listed = json.loads(qrt(root, "show", "batch.sweep", "--json").stdout)
    assert listed == jobs
    missing = qrt(root, "show", "batch.nothing")
    assert missing.returncode == 1 and "batch.nothing has no jobs in qrt.lock" in missing.stderr

    values[5] = 1.3
    sweep_project(root, values, name="ry-${theta.index}")
    plan = qrt(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    changed = [line.strip() for line in plan.stdout.splitlines() if "job.sweep/" in line]
    assert len(changed) == 1 and changed[0].startswith("-/+ job.sweep/ry-5  rerun"), plan.stdout
    assert "~ matrix.theta: 1.25 → 1.3" in plan.stdout  # the old and the new value
    done = qrt(root, "apply", "--auto-approve", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    after = json.loads((root / "qrt.lock").read_text())["jobs"]
    assert [a for a in sorted(after) if after[a]["id"] != jobs[a]["id"]] == ["job.sweep/ry-5"]
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 0


def test_a_slug_named_job_is_renamed_by_a_value_edit(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qrt_apply.cli import AppContext, cli

    from fakes import FakeRuntime

    runtime = FakeRuntime()

    def run(*args: str):
        obj = AppContext(project_dir=tmp_path, _runtime=runtime)
        return CliRunner().invoke(cli, ["-C", str(tmp_path), *args], obj=obj)

    root = sweep_project(tmp_path, [0.1, 0.2, 0.3])
    assert run("apply", "--auto-approve").exit_code == 0
    sweep_project(root, [0.1, 0.25, 0.3])
    plan = json.loads(run("plan", "--format", "json").output)
    assert [(a["action"], a["address"]) for a in plan["actions"]] == [("run", "job.sweep/ry-0p25")]
    assert plan["orphans"] == ["job.sweep/ry-0p2"]
