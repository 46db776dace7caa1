"""Results end to end on the embedded runtime and qiskit-aer: readable qrt.lock, `qrt results`
tables, plots, and drift when jobs are rerun."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from projects import BELL, qrt, write
from support.results import blobs

pytestmark = pytest.mark.slow

MANIFEST = """
apiVersion: qrt/v1
kind: JobBatch
name: bell
program: sampler
backend: aer_simulator
options: {default_shots: 1000, seed_simulator: 11}
result_tolerance: {tvd: 0.2}
jobs:
  - name: bell
    inputs:
      pubs:
        - circuit: {$file: ../circuits/bell.qasm}
  - name: shots-${shots}
    matrix: {shots: [200, 400, 800]}
    inputs:
      pubs:
        - circuit: {$file: ../circuits/bell.qasm}
          shots: "${shots}"
---
apiVersion: qrt/v1
kind: JobBatch
name: energy
program: estimator
backend: aer_simulator
options: {default_precision: 0.02, seed_simulator: 5}
jobs:
  - name: ra
    inputs:
      pubs:
        - circuit: {library: real_amplitudes, num_qubits: 2, reps: 1}
          observables: [[ZZ, 1], [XI, 0.5]]
          parameter_values: [0.1, 0.2, 0.3, 0.4]
---
apiVersion: qrt/v1
kind: JobBatch
name: legacy
program: estimator
backend: aer_simulator
jobs:
  - name: v1
    inputs:
      circuits: [{$file: ../circuits/bell.qasm}]
      observables: [[[ZZ, 1]]]
      run_options: {shots: 1000, seed_simulator: 3}
"""


def ok(root: Path, *args: str) -> str:
    done = qrt(root, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def lock_jobs(root: Path) -> dict[str, Any]:
    return json.loads((root / "qrt.lock").read_text())["jobs"]


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write(root, "circuits/bell.qasm", BELL)
    write(root, "manifests/jobs.yaml", MANIFEST)
    ok(root, "apply", "--auto-approve")
    return root


def test_lockfile_results_are_plain_json(applied: Path) -> None:
    jobs = lock_jobs(applied)
    assert {r["status"] for r in jobs.values()} == {"COMPLETED"}
    assert blobs(jobs) == []
    bell = jobs["job.bell/bell"]["result"]["results"][0]["data"]["c"]
    assert set(bell["counts"]) == {"00", "11"} and sum(bell["counts"].values()) == 1000
    energy = jobs["job.energy/ra"]["result"]["results"][0]["data"]
    assert isinstance(energy["evs"], float) and isinstance(energy["stds"], float)
    legacy = jobs["job.legacy/v1"]["result"]
    assert legacy["values"] == [pytest.approx(1.0)]  # a V1 ndarray, now a list of numbers
    assert legacy["metadata"][0]["shots"] == 1000


def test_results_table_of_counts_and_of_expectation_values(applied: Path) -> None:
    counts = lock_jobs(applied)["job.bell/bell"]["result"]["results"][0]["data"]["c"]["counts"]
    out = ok(applied, "results", "job.bell/bell")
    rows = re.findall(r"^  (00|11)\s+(\d+)\s+([01]\.\d{4})$", out, re.M)
    expected = sorted(counts.items(), key=lambda kv: -kv[1])
    assert [(k, int(n)) for k, n, _ in rows] == expected
    assert [float(p) for _, _, p in rows] == [
        pytest.approx(n / 1000, abs=1e-4) for _, n in expected
    ]
    data = lock_jobs(applied)["job.energy/ra"]["result"]["results"][0]["data"]
    out = ok(applied, "results", "job.energy/ra")
    assert re.search(rf"pub 0\s+{data['evs']:.6g}\s+± {data['stds']:.2g}", out), out
    out = ok(applied, "results", "job.legacy/v1")
    assert re.search(r"^circuit 0\s+1\s+± 0$", out, re.M), out  # ZZ of a Bell state: exactly 1
    as_json = json.loads(ok(applied, "results", "job.bell/bell", "--json"))
    assert as_json["result"]["results"][0]["data"]["c"]["counts"] == counts


def test_batch_results_are_a_sweep_over_the_matrix_variable(applied: Path) -> None:
    out = ok(applied, "results", "batch.bell")
    assert "against shots" in out
    rows = re.findall(r"^  (shots-\d+)\s+(\d+)\s", out, re.M)
    assert rows == [("shots-200", "200"), ("shots-400", "400"), ("shots-800", "800")]
    assert "left out (no shots value): bell" in out


def test_plot_draws_the_counts(applied: Path, tmp_path: Path) -> None:
    png = tmp_path / "bell.png"
    ok(applied, "results", "job.bell/bell", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    svg = tmp_path / "bell.svg"
    ok(applied, "results", "job.bell/bell", "--plot", str(svg))
    text = svg.read_text()
    counts = lock_jobs(applied)["job.bell/bell"]["result"]["results"][0]["data"]["c"]["counts"]
    for outcome, n in counts.items():  # each bar's outcome and probability label are drawn
        assert f">{outcome}<" in text and f">{n / 1000:.3f}<" in text
    again = tmp_path / "again.svg"
    ok(applied, "results", "job.bell/bell", "--plot", str(again))
    assert again.read_bytes() == svg.read_bytes()  # deterministic: fit for committing


def test_plot_of_expectation_values_and_of_a_sweep(applied: Path, tmp_path: Path) -> None:
    bars = tmp_path / "energy.svg"
    ok(applied, "results", "job.energy/ra", "--plot", str(bars))
    assert "expectation values ± standard error" in bars.read_text()
    sweep = tmp_path / "sweep.svg"
    ok(applied, "results", "batch.bell", "--plot", str(sweep))
    text = sweep.read_text()
    assert ">shots<" in text and "P(00)" in text and "P(11)" in text


def test_plot_refuses_other_formats_and_explains_a_missing_matplotlib(
    applied: Path, tmp_path: Path
) -> None:
    done = qrt(applied, "results", "job.bell/bell", "--plot", str(tmp_path / "x.jpg"))
    assert done.returncode == 1 and "must end in .png or .svg" in done.stderr
    assert "Traceback" not in done.stderr
    target = tmp_path / "no.png"
    probe = (
        "import sys; sys.modules['matplotlib'] = None\n"  # as if the plot extra were not installed
        "from qrt_apply.cli import main\n"
        "sys.argv = ['qrt', *sys.argv[1:]]\n"
        "main()\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "-C",
            str(applied),
            "results",
            "job.bell/bell",
            "--plot",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: plotting needs matplotlib: pip install 'qrt-apply[plot]'"
    ]
    assert "Traceback" not in done.stderr and not target.exists()


def test_rerun_reports_drift_and_compare_follows_the_tolerance(applied: Path) -> None:
    before = lock_jobs(applied)
    out = ok(applied, "results", "job.bell/bell", "--compare")
    assert "no earlier completed run" in out
    edit(applied, "manifests/jobs.yaml", "seed_simulator: 11", "seed_simulator: 12")
    edit(applied, "manifests/jobs.yaml", "seed_simulator: 5", "seed_simulator: 6")
    out = ok(applied, "apply", "--auto-approve")
    assert "Result drift of 5 rerun job(s) against the previous run" in out
    jobs = lock_jobs(applied)
    drift = jobs["job.bell/bell"]["drift"]
    assert drift["against"] == before["job.bell/bell"]["id"]
    old = before["job.bell/bell"]["result"]["results"][0]["data"]["c"]["counts"]
    new = jobs["job.bell/bell"]["result"]["results"][0]["data"]["c"]["counts"]
    tvd = 0.5 * sum(abs(old.get(k, 0) - new.get(k, 0)) / 1000 for k in {*old, *new})
    assert 0 < tvd < 0.2 and drift["tvd"] == pytest.approx(tvd, rel=1e-3)
    assert "z" in jobs["job.energy/ra"]["drift"] and "drift" not in jobs["job.legacy/v1"]
    assert qrt(applied, "results", "job.bell/bell", "--compare").returncode == 0
    assert qrt(applied, "results", "batch.bell", "--compare").returncode == 0

    # A tighter tolerance reruns nothing, and the same drift is now past it.
    edit(
        applied,
        "manifests/jobs.yaml",
        "result_tolerance: {tvd: 0.2}",
        "result_tolerance: {tvd: 0.000000001}",
    )
    plan = qrt(applied, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    done = qrt(applied, "results", "job.bell/bell", "--compare")
    assert done.returncode == 1 and "PAST TOLERANCE" in done.stdout
    assert "drifted past the tolerance" in done.stderr
    assert qrt(applied, "results", "batch.bell", "--compare").returncode == 1
    z = jobs["job.energy/ra"]["drift"]["z"]
    edit(
        applied,
        "manifests/jobs.yaml",
        "options: {default_precision: 0.02, seed_simulator: 6}",
        f"options: {{default_precision: 0.02, seed_simulator: 6}}\nresult_tolerance: {{z: {z / 2}}}",
    )
    done = qrt(applied, "results", "job.energy/ra", "--compare")
    assert done.returncode == 1 and "PAST TOLERANCE" in done.stdout, done.stdout + done.stderr


def test_result_tolerance_is_checked_by_the_schema(tmp_path: Path) -> None:
    write(tmp_path, "circuits/bell.qasm", BELL)
    write(tmp_path, "manifests/jobs.yaml", MANIFEST.replace("{tvd: 0.2}", "{tvd: 2}"))
    done = qrt(tmp_path, "validate")
    assert done.returncode == 1 and "manifests/jobs.yaml:7" in done.stderr, done.stderr
    assert "result_tolerance" in done.stderr and "Traceback" not in done.stderr
    write(tmp_path, "manifests/jobs.yaml", MANIFEST.replace("{tvd: 0.2}", "{tv: 0.2}"))
    done = qrt(tmp_path, "validate")
    assert done.returncode == 1 and "unknown key 'tv'" in done.stderr, done.stderr


SWEEP = """
apiVersion: qrt/v1
kind: JobBatch
name: ry
program: estimator
backend: aer_simulator
session: true
options: {{default_precision: 0.05, seed_simulator: 9}}
jobs:
  - name: ry-${{theta.index}}
    matrix: {{theta: {values}}}
    inputs:
      pubs:
        - circuit: {{library: real_amplitudes, num_qubits: 1, reps: 0}}
          observables: [[Z, 1]]
          parameter_values: ["${{theta}}"]
"""


def test_float_sweep_in_a_session_plots_and_diffs_one_changed_value(tmp_path: Path) -> None:
    values = [round(0.25 * i, 2) for i in range(12)]
    write(tmp_path, "manifests/ry.yaml", SWEEP.format(values=json.dumps(values)))
    ok(tmp_path, "apply", "--auto-approve")
    jobs = lock_jobs(tmp_path)
    assert len({r["session_id"] for r in jobs.values()}) == 1
    assert qrt(tmp_path, "plan", "--detailed-exitcode").returncode == 0

    out = ok(tmp_path, "results", "batch.ry")
    assert "12 completed job(s) against theta" in out
    rows = re.findall(r"^  ry-(\d+)\s+(\S+)\s+(-?[\d.]+) ± ", out, re.M)
    assert [float(theta) for _, theta, _ in rows] == values  # in the order of theta
    for index, theta, value in rows:  # <Z> after RY(θ) is cos θ, within the shot noise
        assert abs(float(value) - math.cos(float(theta))) < 0.25, (index, theta, value)
    plot = tmp_path / "ry.svg"
    ok(tmp_path, "results", "batch.ry", "--plot", str(plot))
    text = plot.read_text()
    assert ">theta<" in text and ">expectation value<" in text

    values[5] = 1.3
    write(tmp_path, "manifests/ry.yaml", SWEEP.format(values=json.dumps(values)))
    plan = qrt(tmp_path, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "~ matrix.theta: 1.25 → 1.3" in plan.stdout
    assert "~ inputs.pubs[0].parameter_values[0]: 1.25 → 1.3" in plan.stdout
    out = ok(tmp_path, "apply", "--auto-approve")
    after = lock_jobs(tmp_path)
    assert [a for a in sorted(after) if after[a]["id"] != jobs[a]["id"]] == ["job.ry/ry-5"]
    assert "Result drift of 1 rerun job(s)" in out and "job.ry/ry-5" in out
    assert after["job.ry/ry-5"]["drift"]["against"] == jobs["job.ry/ry-5"]["id"]


def test_refresh_reports_the_drift_of_jobs_it_collects(tmp_path: Path) -> None:
    from qrt_apply.api import Project
    from qrt_apply.render.console import NullConsole

    write(tmp_path, "circuits/bell.qasm", BELL)
    one = MANIFEST.split("---")[0].replace("[200, 400, 800]", "[300]")
    write(tmp_path, "manifests/jobs.yaml", one)
    with Project.load(tmp_path) as project:
        assert project.apply(console=NullConsole()).ok
        edit(tmp_path, "manifests/jobs.yaml", "seed_simulator: 11", "seed_simulator: 12")
        submitted = project.apply(console=NullConsole(), wait=False)
        assert sorted(submitted.pending) == ["job.bell/bell", "job.bell/shots-300"]
        assert submitted.drift == {}  # nothing collected yet
        refreshed = project.refresh(wait=True, console=NullConsole())
    assert sorted(refreshed.drift) == ["job.bell/bell", "job.bell/shots-300"]
    record = lock_jobs(tmp_path)["job.bell/shots-300"]
    assert refreshed.drift["job.bell/shots-300"] == record["drift"]
    assert record["drift"]["against"] == record["history"][0]["id"] and record["drift"]["tvd"] > 0
    assert refreshed.to_json()["drift"]["job.bell/bell"]["tvd"] >= 0
