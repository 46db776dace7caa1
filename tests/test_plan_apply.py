"""Planning and applying against an in-memory runtime: every core row of the reconcile table."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qrt_apply.apply import Applier
from qrt_apply.errors import PlanError
from qrt_apply.lockfile import Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.plan import make_plan, observe
from qrt_apply.render.console import NullConsole

from fakes import FakeRuntime
from projects import small_project


def plan_for(root: Path, runtime: FakeRuntime, **kwargs):
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock")
    # planning reads the lockfile's records in place (Lockfile.view), as the commands do: it
    # must leave every one of them as it was
    view = lock.view()
    before = copy.deepcopy(view)
    plan = make_plan(desired, view, observe(runtime, view, names=desired.programs), **kwargs)
    assert view == before, "planning modified the lockfile's records"
    return desired, lock, plan


def converge(root: Path, runtime: FakeRuntime, **kwargs):
    desired, lock, plan = plan_for(root, runtime, **kwargs)
    report = Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    return plan, report


def kinds(plan) -> dict[str, str]:
    return {a.address: a.kind for a in plan.actions}


def test_first_apply_creates_runs_and_records(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    plan, report = converge(root, runtime)
    assert kinds(plan) == {
        "program.echo": "create",
        "job.bell/plain": "run",
        "job.bell/shots-10": "run",
        "job.bell/shots-20": "run",
        "job.echoes/one": "run",
        "job.echoes/two": "run",
    }
    assert [a.address for a in plan.actions][0] == "program.echo"  # programs before jobs
    lock = json.loads((root / "qrt.lock").read_text())
    assert lock["target"] == {"channel": "fake", "url": "memory", "instance": None}
    job = lock["jobs"]["job.echoes/two"]
    assert job["status"] == "COMPLETED"
    assert job["result"] == {"echo": {"iterations": 2, "label": "two"}}
    assert job["interim_results"] == [{"step": 1}]
    # one session for the session batch: the second job joined the first one's session
    assert lock["jobs"]["job.echoes/one"]["session_id"] == lock["jobs"]["job.echoes/one"]["id"]
    assert lock["jobs"]["job.echoes/two"]["session_id"] == lock["jobs"]["job.echoes/one"]["id"]
    assert runtime.closed_sessions == [lock["jobs"]["job.echoes/one"]["id"]]
    # primitive options travel inside the params
    sent = [
        json.loads(args[1])
        for name, args in runtime.calls
        if name == "run" and args[0] == "sampler"
    ]
    assert all(p["options"] == {"default_shots": 100} for p in sent)
    assert report.failed == []


def test_second_plan_is_empty_and_lockfile_byte_identical(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    before = (root / "qrt.lock").read_bytes()
    plan, _ = converge(root, runtime)
    assert plan.actions == ()
    assert (root / "qrt.lock").read_bytes() == before
    assert before.endswith(b"}\n")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("programs/echo.py", "return {", "return {'v': 2, "),
            {"program.echo": "update", "job.echoes/one": "rerun", "job.echoes/two": "rerun"},
        ),
        (("manifests/all.yaml", "Echoes its inputs.", "Echoes."), {"program.echo": "update"}),
        (
            (
                "manifests/all.yaml",
                "max_execution_time: 60",
                "max_execution_time: 60\nvisibility: public",
            ),
            {"program.echo": "set-visibility"},
        ),
        (
            ("circuits/bell.qasm", "measure", "barrier q;\nmeasure"),
            {"job.bell/plain": "rerun", "job.bell/shots-10": "rerun", "job.bell/shots-20": "rerun"},
        ),
        (("manifests/all.yaml", "label: two", "label: deux"), {"job.echoes/two": "rerun"}),
    ],
    ids=["source", "description", "visibility", "circuit-file", "job-input"],
)
def test_each_edit_plans_exactly_its_action(tmp_path: Path, edit, expected) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    path, old, new = edit
    text = (root / path).read_text()
    assert old in text
    (root / path).write_text(text.replace(old, new, 1))
    plan, _ = converge(root, runtime)
    assert kinds(plan) == expected
    if "program.echo" in expected and expected["program.echo"] == "update":
        touches = plan.actions[0].detail("touches")
        assert touches == (("data",) if path.startswith("programs") else ("metadata",))
    again, _ = converge(root, runtime)
    assert again.actions == ()


def test_rerun_keeps_history(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    first = json.loads((root / "qrt.lock").read_text())["jobs"]["job.echoes/two"]["id"]
    text = (root / "manifests/all.yaml").read_text().replace("label: two", "label: deux")
    (root / "manifests/all.yaml").write_text(text)
    plan, _ = converge(root, runtime)
    assert "inputs changed" in plan.actions[0].reason
    record = json.loads((root / "qrt.lock").read_text())["jobs"]["job.echoes/two"]
    assert record["id"] != first
    assert record["history"][0]["id"] == first


def test_failed_job_is_recorded_then_rerun(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    desired, lock, plan = plan_for(root, runtime)
    program_id_outcomes = {}
    applier = Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None)
    applier.apply(
        make_plan(
            desired,
            lock.snapshot(),
            observe(runtime, lock.snapshot(), names=desired.programs),
            targets=["program.echo"],
        )
    )
    echo_id = json.loads((root / "qrt.lock").read_text())["programs"]["program.echo"]["id"]
    program_id_outcomes[echo_id] = "FAILED"
    runtime.outcomes = program_id_outcomes
    _, report = converge(root, runtime)
    assert report.failed == ["job.echoes/one", "job.echoes/two"]
    record = json.loads((root / "qrt.lock").read_text())["jobs"]["job.echoes/one"]
    assert record["status"] == "FAILED" and "ValueError: boom" in record["error"]
    runtime.outcomes = {}
    plan, report = converge(root, runtime)
    assert kinds(plan) == {"job.echoes/one": "rerun", "job.echoes/two": "rerun"}
    assert report.failed == []


def test_drift_is_shown_and_repaired(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    program_id = json.loads((root / "qrt.lock").read_text())["programs"]["program.echo"]["id"]
    runtime.update_program(program_id, description="changed by hand")
    runtime.set_program_visibility(program_id, True)
    plan, _ = converge(root, runtime)
    assert plan.drift == ("program.echo",)
    assert [(a.address, a.kind) for a in plan.actions] == [
        ("program.echo", "update"),
        ("program.echo", "set-visibility"),
    ]
    assert all(a.drift for a in plan.actions)
    assert runtime.program(program_id).description == "Echoes its inputs."
    assert runtime.program(program_id).is_public is False
    assert converge(root, runtime)[0].actions == ()


def test_program_deleted_behind_our_back_is_recreated(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    program_id = json.loads((root / "qrt.lock").read_text())["programs"]["program.echo"]["id"]
    runtime.delete_program(program_id)
    plan, _ = converge(root, runtime)
    assert kinds(plan) == {"program.echo": "create"} and plan.actions[0].drift


def test_existing_program_not_in_lockfile_is_an_error(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    runtime.upload_program("def main(b, u): pass", {"name": "echo", "max_execution_time": 5})
    with pytest.raises(PlanError, match="qrt import program.echo"):
        plan_for(root, runtime)


def test_orphans_and_prune(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    text = (root / "manifests/all.yaml").read_text()
    head, _, _ = text.partition("---\napiVersion: qrt/v1\nkind: JobBatch\nname: bell")
    # keep only the program and the echoes batch, drop the bell batch
    (root / "manifests/all.yaml").write_text(
        text.replace(text[len(head) : text.index("---", len(head) + 3)], "")
    )
    _, _, plan = plan_for(root, runtime)
    assert plan.actions == ()
    assert set(plan.orphans) == {"job.bell/plain", "job.bell/shots-10", "job.bell/shots-20"}
    plan, _ = converge(root, runtime, prune=True)
    assert set(kinds(plan).values()) == {"forget"}
    assert "job.bell/plain" not in json.loads((root / "qrt.lock").read_text())["jobs"]


def test_interrupted_submission_is_adopted_not_resubmitted(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    desired, lock, plan = plan_for(root, runtime, targets=["job.bell/plain"])
    runtime.fail_next_run_after_submit = True
    with pytest.raises(KeyboardInterrupt):
        Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    record = json.loads((root / "qrt.lock").read_text())["jobs"]["job.bell/plain"]
    assert record["status"] == "SUBMITTING" and "id" not in record
    runs_before = sum(1 for name, _ in runtime.calls if name == "run")
    plan, _ = converge(root, runtime, targets=["job.bell/plain"])
    assert kinds(plan) == {"job.bell/plain": "wait"}
    assert "adopt" in plan.actions[0].reason
    assert sum(1 for name, _ in runtime.calls if name == "run") == runs_before
    record = json.loads((root / "qrt.lock").read_text())["jobs"]["job.bell/plain"]
    assert record["status"] == "COMPLETED"


def test_no_wait_then_wait_collects(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    desired, lock, plan = plan_for(root, runtime)
    report = Applier(runtime, lock, desired, NullConsole(), wait=False).apply(plan)
    assert len(report.pending) == 5
    plan, _ = converge(root, runtime)
    assert set(kinds(plan).values()) == {"wait"}
    assert converge(root, runtime)[0].actions == ()


def test_targets_and_replace(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    _, _, plan = plan_for(root, runtime, targets=["job.echoes/one"])
    assert kinds(plan) == {"program.echo": "create", "job.echoes/one": "run"}
    converge(root, runtime)
    plan, _ = converge(root, runtime, replace=["job.bell/plain"])
    assert kinds(plan) == {"job.bell/plain": "rerun"}


def test_spec_changes_are_shown_per_path(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    text = (root / "manifests/all.yaml").read_text()
    text = text.replace(
        "iterations: {type: integer, minimum: 1}", "iterations: {type: integer, minimum: 0}"
    )
    text = text.replace("label: {type: string}", "label: {type: string, maxLength: 9}")
    (root / "manifests/all.yaml").write_text(text)
    _, _, plan = plan_for(root, runtime)
    (action,) = [a for a in plan.actions if a.address == "program.echo"]
    assert action.kind == "update" and action.detail("touches") == ("metadata",)
    assert [(c.field, c.old, c.new) for c in action.changes] == [
        ("spec.parameters.properties.iterations.minimum", 1, 0),
        ("spec.parameters.properties.label.maxLength", None, 9),
    ]


def test_another_users_public_program_of_the_same_name_is_no_conflict(tmp_path: Path) -> None:
    from qrt_apply.runtime.base import ProgramInfo

    root = small_project(tmp_path)
    runtime = FakeRuntime()
    runtime.programs_by_id["echo-theirs"] = ProgramInfo(
        id="echo-theirs", name="echo", is_public=True, data=None
    )
    plan, _ = converge(root, runtime)
    assert kinds(plan)["program.echo"] == "create"
    assert (
        json.loads((root / "qrt.lock").read_text())["programs"]["program.echo"]["id"]
        != "echo-theirs"
    )


def test_a_job_submitted_by_an_apply_that_died_with_a_journal_is_adopted(tmp_path: Path) -> None:
    # As the test above, but the dead apply journaled: its SUBMITTING record is only in
    # .qrt/lock.journal, and the next load replays it before the plan looks.
    root = small_project(tmp_path)
    journal = root / ".qrt" / "lock.journal"
    runtime = FakeRuntime()
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock", journal=journal, flush_interval=1e9)
    plan = make_plan(
        desired,
        lock.snapshot(),
        observe(runtime, lock.snapshot(), names=desired.programs),
        targets=["job.bell/plain"],
    )
    runtime.fail_next_run_after_submit = True
    with pytest.raises(KeyboardInterrupt):
        Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    assert not (root / "qrt.lock").exists() and journal.exists()  # no close(): qrt "died"
    replayed = Lockfile.load(root / "qrt.lock", journal=journal)
    record = replayed.job("job.bell/plain") or {}
    assert record["status"] == "SUBMITTING" and "id" not in record
    assert not journal.exists()
    runs_before = sum(1 for name, _ in runtime.calls if name == "run")
    plan, _ = converge(root, runtime, targets=["job.bell/plain"])
    assert kinds(plan) == {"job.bell/plain": "wait"}
    assert sum(1 for name, _ in runtime.calls if name == "run") == runs_before
