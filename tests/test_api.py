"""The Python API (qrt_apply.Project): the README's example against the embedded runtime, and the
rules an API caller relies on (exact plans refused once stale, approval, results) over a fake."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qrt_apply
from qrt_apply.api import Project
from qrt_apply.errors import ConfigError, ManifestError, PlanError
from qrt_apply.plan import Plan
from qrt_apply.plan.saved import plan_from_json
from qrt_apply.render.console import NullConsole

from fakes import FakeRuntime
from projects import REPO, copy_example, small_project, write


def readme_python_example() -> str:
    """The ```python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text("utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's Python API section has no python example"
    return found.group(1)


def test_public_surface() -> None:
    assert set(qrt_apply.__all__) == {
        "ApplyResult",
        "Interrupted",
        "JobResult",
        "Project",
        "RefreshResult",
        "Validation",
        "__version__",
    }
    assert qrt_apply.__all__ == [*qrt_apply.api.__all__, "__version__"]  # the same names
    assert qrt_apply.Project is Project
    with pytest.raises(AttributeError):
        qrt_apply.Nothing  # noqa: B018


def test_split_out_modules_have_a_role_and_their_names_stay_where_they_were() -> None:
    import importlib

    from qrt_apply import api, api_types, applylock, lockfile, submit
    from qrt_apply.apply import Applier

    for name in ("api_types", "api_plan", "api_apply", "applylock", "submit"):
        module = importlib.import_module(f"qrt_apply.{name}")
        assert module.__doc__ and module.__all__, name
        assert all(hasattr(module, attr) for attr in module.__all__), name
    for name in api_types.__all__:
        assert getattr(api, name) is getattr(api_types, name)
    assert lockfile.ApplyLock is applylock.ApplyLock
    assert issubclass(Applier, submit.JobSubmitter)


def test_readme_example_runs_on_the_embedded_runtime(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    for key in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", readme_python_example()],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    jobs = json.loads((root / "qrt.lock").read_text())["jobs"]
    assert lines[0] == f"{len(jobs)} job(s) in 3 batch(es)"
    assert "create program.ghz-sweep" in lines and "run job.bell/bell" in lines
    assert lines[-2].startswith("applied {") and lines[-2].endswith("failed: ()")
    assert all(record["status"] == "COMPLETED" for record in jobs.values())
    counts = ast.literal_eval(lines[-1])  # the printed dict of counts
    assert set(counts) == {"00", "11"}
    # What the example applied is what a new plan finds: nothing left to do.
    with Project.load(root) as project:
        assert not project.plan().has_changes


def test_plan_then_apply_exactly_that_plan(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    project = Project.load(root, runtime=runtime)
    assert project.validate() == qrt_apply.Validation(programs=1, batches=2, jobs=5)
    plan = project.plan()
    assert plan.counts() == {"create": 1, "run": 5}
    console = NullConsole()
    outcome = project.apply(plan, console=console)
    assert outcome.outcome == "applied" and outcome.ok
    assert outcome.done == {"create": 1, "run": 5}
    assert sorted(outcome.finished) == sorted(a.address for a in plan.actions if a.kind == "run")
    assert "program.echo: created echo-000000000001" in console.lines
    result = project.results("job.echoes/two")
    assert result.result == {"echo": {"iterations": 2, "label": "two"}}
    assert result.interim_results == ({"step": 1},)
    assert result.record["status"] == "COMPLETED"
    assert project.apply().outcome == "no-changes"
    assert project.refresh().in_flight == ()


def test_stale_plans_are_refused(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    project = Project.load(root, runtime=runtime)
    first = project.plan()
    manifest = root / "manifests/all.yaml"
    manifest.write_text(manifest.read_text().replace("iterations: 1}", "iterations: 3}"))
    with pytest.raises(PlanError, match="the manifests changed"):
        project.apply(first)
    second = project.plan()
    assert project.apply(project.plan()).outcome == "applied"
    with pytest.raises(PlanError, match=r"qrt\.lock changed"):
        project.apply(second)
    # A plan this Project did not make (here: one read back from JSON) carries no manifest digest.
    with pytest.raises(PlanError, match="made by this Project"):
        project.apply(plan_from_json(project.plan().to_json()))
    with pytest.raises(ConfigError, match="lock-only"):
        project.apply(project.plan(lock_only=True))
    with pytest.raises(ConfigError, match="saved plan is applied as it is"):
        project.apply(project.plan(), prune=True)
    # Only the most recent plans are kept: an old one is refused, a recent one is applied.
    old = project.plan()
    plans = [project.plan() for _ in range(16)]
    with pytest.raises(PlanError, match="made by this Project"):
        project.apply(old)
    assert project.apply(plans[0]).outcome == "no-changes"


def test_saved_plan_file_round_trip(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    project = Project.load(root, runtime=runtime)
    project.save_plan(project.plan(), tmp_path / "plan.json")
    outcome = project.apply(tmp_path / "plan.json", console=NullConsole())
    assert outcome.done == {"create": 1, "run": 5}
    with pytest.raises(PlanError, match="stale plan"):
        project.apply(tmp_path / "plan.json")


def test_approval_sees_the_plan_and_may_cancel(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    project = Project.load(root, runtime=runtime)
    seen: list[dict[str, int]] = []
    shown: list[bool] = []

    def refuse(plan: Plan) -> bool:
        seen.append(plan.counts())
        return False

    outcome = project.apply(
        approve=refuse, on_plan=lambda plan: shown.append(plan.has_changes), targets=["batch.bell"]
    )
    assert outcome.outcome == "cancelled" and not outcome.ok
    assert seen == [{"run": 3}] and shown == [True]
    assert runtime.calls == [] and not (root / "qrt.lock").exists()


def test_bad_manifest_and_unknown_address(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    project = Project.load(root, runtime=FakeRuntime())
    with pytest.raises(ConfigError, match="unknown address 'job.nope/x'"):
        project.plan(targets=["job.nope/x"])
    with pytest.raises(ConfigError, match="is not a job in qrt.lock"):
        project.results("job.bell/plain")
    write(root, "manifests/bad.yaml", "apiVersion: qrt/v1\nkind: Nope\n")
    with pytest.raises(ManifestError, match=r"manifests/bad\.yaml:"):
        project.validate()


def test_failed_jobs_and_refresh(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime(outcomes={"sampler": "FAILED"})
    project = Project.load(root, runtime=runtime)
    outcome = project.apply(wait=False, console=NullConsole())
    assert outcome.pending and not outcome.finished
    refreshed = project.refresh(wait=True, console=NullConsole())
    assert set(refreshed.in_flight) == set(outcome.pending)
    assert refreshed.running == ()
    assert refreshed.failed == ("job.bell/plain", "job.bell/shots-10", "job.bell/shots-20")
    assert refreshed.finished["job.echoes/one"] == "COMPLETED"
    with pytest.raises(ConfigError, match=r"has no result: status FAILED\n(.*\n)*ValueError: boom"):
        project.results("job.bell/plain")


def test_show_reads_the_lockfile_and_import_adopts_a_runtime_job(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    project = Project.load(root, runtime=runtime)
    assert project.show() == {"programs": {}, "jobs": {}}
    project.apply(console=NullConsole())
    everything = project.show()
    assert set(everything["programs"]) == {"program.echo"}
    assert len(everything["jobs"]) == 5
    batch = project.show("batch.echoes")
    assert batch["programs"] == {} and list(batch["jobs"]) == ["job.echoes/one", "job.echoes/two"]
    one = project.show("program.echo")
    assert one == {"programs": {"program.echo": everything["programs"]["program.echo"]}, "jobs": {}}
    with pytest.raises(ConfigError, match=r"^job\.echoes/nine is not in qrt\.lock$"):
        project.show("job.echoes/nine")
    with pytest.raises(ConfigError, match=r"^batch\.nothing has no jobs in qrt\.lock$"):
        project.show("batch.nothing")

    # Forgotten from the lockfile, then adopted again from the runtime: no job is submitted.
    job_id = everything["jobs"]["job.echoes/two"]["id"]
    project.forget("job.echoes/two")
    submitted = len(runtime.jobs_by_id)
    with pytest.raises(ConfigError, match="refusing to import .* differs in inputs"):
        project.import_("job.echoes/two", everything["jobs"]["job.echoes/one"]["id"])
    record = project.import_("job.echoes/two", job_id, console=NullConsole())
    assert record["id"] == job_id and record["imported"] is True
    assert record["status"] == "COMPLETED"
    assert project.show("job.echoes/two")["jobs"]["job.echoes/two"] == record
    assert project.results("job.echoes/two").result == {"echo": {"iterations": 2, "label": "two"}}
    assert len(runtime.jobs_by_id) == submitted and not project.plan().has_changes
    with pytest.raises(ConfigError, match="takes program.NAME or job.BATCH/JOB"):
        project.import_("batch.echoes", job_id)
