"""Refactoring without reruns: `qrt mv`, `Moved` manifests, `qrt forget`, and `prune: false`, with
the apply lock and crash journal honoured by every command that edits qrt.lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrt_apply.cli import AppContext, cli
from qrt_apply.errors import ConfigError
from qrt_apply.journal import journal_line
from qrt_apply.lockfile import JOURNAL_NAME, ApplyLock
from qrt_apply.moves import apply_steps, forget_steps, move_steps

from fakes import FakeRuntime
from projects import BELL, PROGRAM_SOURCE, qrt, small_project, write


def run_cli(root: Path, *args: str, runtime=None):
    return CliRunner().invoke(
        cli, ["-C", str(root), *args], obj=AppContext(project_dir=root, _runtime=runtime)
    )


def lock(root: Path) -> dict:
    return json.loads((root / "qrt.lock").read_text("utf-8"))


def rename_in(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    path.write_text(path.read_text("utf-8").replace(old, new), "utf-8")


# --- the pure steps ---------------------------------------------------------------------------

DATA = {
    "version": 1,
    "target": None,
    "programs": {"program.echo": {"id": "p1", "name": "echo"}},
    "jobs": {
        "job.bell/a": {"id": "j1", "batch": "bell", "program": "built-in sampler"},
        "job.bell/b": {"id": "j2", "batch": "bell", "program": "built-in sampler"},
        "job.bell-2/a": {"id": "j3", "batch": "bell-2", "program": "built-in sampler"},
        "job.echoes/one": {"id": "j4", "batch": "echoes", "program": "program.echo"},
    },
}


def test_a_batch_move_takes_exactly_its_jobs() -> None:
    renames, steps = move_steps(DATA, "batch.bell", "batch.states")
    assert [(old, new) for _, old, new in renames] == [
        ("job.bell/a", "job.states/a"),
        ("job.bell/b", "job.states/b"),
    ]
    after = apply_steps(DATA, steps)
    assert sorted(after["jobs"]) == [
        "job.bell-2/a",
        "job.echoes/one",
        "job.states/a",
        "job.states/b",
    ]
    assert after["jobs"]["job.states/a"] == {
        "id": "j1",
        "batch": "states",
        "program": "built-in sampler",
    }
    assert DATA["jobs"]["job.bell/a"]["batch"] == "bell"  # the input is left as it was


def test_a_program_move_renames_what_its_jobs_ran() -> None:
    after = apply_steps(DATA, move_steps(DATA, "program.echo", "program.echo2")[1])
    assert after["programs"] == {"program.echo2": {"id": "p1", "name": "echo"}}
    assert after["jobs"]["job.echoes/one"]["program"] == "program.echo2"


def test_a_job_moves_to_another_batch() -> None:
    after = apply_steps(DATA, move_steps(DATA, "job.bell/b", "job.other/bee")[1])
    assert after["jobs"]["job.other/bee"] == {
        "id": "j2",
        "batch": "other",
        "program": "built-in sampler",
    }
    assert "job.bell/b" not in after["jobs"]


@pytest.mark.parametrize(
    ("source", "dest", "message"),
    [
        ("batch.bell", "program.bell", "not the same kind"),
        ("batch.nope", "batch.x", "nothing at batch.nope"),
        ("batch.bell", "batch.bell-2", "already has job.bell-2/a"),
        ("job.bell/a", "job.bell/b", "already has job.bell/b"),
        ("job.bell", "job.x/y", "is not an address"),
        ("batch.bell", "batch.bell", "already where it is"),
    ],
)
def test_moves_that_cannot_be_are_refused(source: str, dest: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        move_steps(DATA, source, dest)


def test_forget_a_batch_drops_only_its_jobs() -> None:
    after = apply_steps(DATA, forget_steps(DATA, "batch.bell"))
    assert sorted(after["jobs"]) == ["job.bell-2/a", "job.echoes/one"]
    with pytest.raises(ConfigError, match="nothing at job.bell/zz"):
        forget_steps(DATA, "job.bell/zz")


# --- commands, plan and apply -----------------------------------------------------------------


def applied(tmp_path: Path) -> tuple[Path, FakeRuntime]:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    done = run_cli(root, "apply", "--auto-approve", runtime=runtime)
    assert done.exit_code == 0, done.output
    return root, runtime


def test_qrt_mv_of_a_renamed_batch_leaves_nothing_to_run(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    before = lock(root)["jobs"]
    rename_in(root, "manifests/all.yaml", "name: bell\n", "name: bell-states\n")
    assert run_cli(root, "plan", "--detailed-exitcode", runtime=runtime).exit_code == 2

    moved = run_cli(root, "mv", "batch.bell", "batch.bell-states")
    assert moved.exit_code == 0, moved.output
    assert "Moved 3 entries in qrt.lock:" in moved.output
    assert "job.bell/plain -> job.bell-states/plain" in moved.output
    after = lock(root)["jobs"]
    assert after["job.bell-states/plain"]["id"] == before["job.bell/plain"]["id"]
    planned = run_cli(root, "plan", "--detailed-exitcode", runtime=runtime)
    assert planned.exit_code == 0, planned.output
    assert "No changes." in planned.output


def test_qrt_mv_of_a_program_renames_it_on_the_runtime_without_reruns(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    program_id = lock(root)["programs"]["program.echo"]["id"]
    rename_in(root, "manifests/all.yaml", "name: echo\n", "name: echo2\n")
    rename_in(root, "manifests/all.yaml", "program: echo\n", "program: echo2\n")
    assert run_cli(root, "mv", "program.echo", "program.echo2").exit_code == 0
    planned = run_cli(root, "plan", runtime=runtime)
    assert "~ program.echo2  update: name changed" in planned.output
    assert "~ name: echo → echo2" in planned.output
    assert "Plan: 1 to update." in planned.output  # the echoes jobs are not rerun
    assert run_cli(root, "apply", "--auto-approve", runtime=runtime).exit_code == 0
    assert runtime.program(program_id).name == "echo2"
    assert lock(root)["jobs"]["job.echoes/one"]["program"] == "program.echo2"
    assert run_cli(root, "plan", "--detailed-exitcode", runtime=runtime).exit_code == 0


MOVED = """
apiVersion: qrt/v1
kind: Moved
from: batch.bell
to: batch.bell-states
"""


def test_a_moved_manifest_plans_moves_and_apply_makes_them(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    ids = {a: r["id"] for a, r in lock(root)["jobs"].items()}
    submitted = len(runtime.jobs_by_id)
    rename_in(root, "manifests/all.yaml", "name: bell\n", "name: bell-states\n")
    write(root, "manifests/moved.yaml", MOVED)

    planned = run_cli(root, "plan", "--detailed-exitcode", runtime=runtime)
    assert planned.exit_code == 2
    assert "  -> job.bell-states/plain  move: moved from job.bell/plain" in planned.output
    assert "Plan: 3 to move." in planned.output
    lock_only = run_cli(root, "plan", "--lock-only", "--detailed-exitcode", "--format", "markdown")
    assert lock_only.exit_code == 2 and "3 to move" in lock_only.output

    assert run_cli(root, "apply", "--auto-approve", runtime=runtime).exit_code == 0
    assert len(runtime.jobs_by_id) == submitted  # nothing submitted
    jobs = lock(root)["jobs"]
    assert jobs["job.bell-states/shots-10"]["id"] == ids["job.bell/shots-10"]
    assert jobs["job.bell-states/shots-10"]["batch"] == "bell-states"
    assert not [a for a in jobs if a.startswith("job.bell/")]
    # the Moved manifest may stay: there is nothing left at its old address
    again = run_cli(root, "plan", "--detailed-exitcode", runtime=runtime)
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    ("moved", "message"),
    [
        (
            "from: batch.gone\nto: batch.nope\n",
            "manifests/moved.yaml:4: Moved: batch.nope is not defined",
        ),
        (
            "from: batch.echoes\nto: batch.bell\n",
            "manifests/moved.yaml:3: Moved: batch.echoes is still defined",
        ),
        (
            "from: batch.gone\nto: program.echo\n",
            "manifests/moved.yaml:4: Moved: from batch.gone to program.echo",
        ),
        (
            "from: batch.gone\nto: batch.bell\nname: x\n",
            "manifests/moved.yaml:5: unknown key 'name'",
        ),
        ("from: job.x\nto: batch.bell\n", "manifests/moved.yaml:3: from: 'job.x' does not match"),
    ],
)
def test_a_bad_moved_manifest_is_one_message_with_file_and_line(
    tmp_path: Path, moved: str, message: str
) -> None:
    root = small_project(tmp_path)
    write(root, "manifests/moved.yaml", "apiVersion: qrt/v1\nkind: Moved\n" + moved)
    done = run_cli(root, "validate")
    assert done.exit_code == 1
    assert message in done.output
    assert "Traceback" not in done.output


def test_forget_drops_the_entry_and_the_runtime_keeps_the_job(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    job_id = lock(root)["jobs"]["job.bell/plain"]["id"]
    done = run_cli(root, "forget", "job.bell/plain")
    assert done.exit_code == 0, done.output
    assert "Forgot 1 entry" in done.output and "still in the manifests" in done.output
    assert "job.bell/plain" not in lock(root)["jobs"]
    assert runtime.job(job_id).status == "COMPLETED"
    planned = run_cli(root, "plan", runtime=runtime)
    assert "+ job.bell/plain  run: new job" in planned.output
    assert run_cli(root, "forget", "job.bell/plain").exit_code == 1


def test_prune_false_keeps_a_program_that_left_the_manifests(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    rename_in(
        root,
        "manifests/all.yaml",
        "max_execution_time: 60\n",
        "max_execution_time: 60\nprune: false\n",
    )
    planned = run_cli(root, "plan", runtime=runtime)
    assert "update: prune: false to record in the lockfile (nothing sent)" in planned.output
    assert run_cli(root, "apply", "--auto-approve", runtime=runtime).exit_code == 0
    assert lock(root)["programs"]["program.echo"]["prune"] is False
    program_id = lock(root)["programs"]["program.echo"]["id"]

    # The Program and its batch leave the manifests: --prune forgets the jobs, keeps the program.
    write(
        root, "manifests/all.yaml", (root / "manifests/all.yaml").read_text("utf-8").split("---")[1]
    )
    planned = run_cli(root, "plan", "--prune", runtime=runtime)
    assert "kept on the runtime (prune: false)" in planned.output
    assert "  = program.echo" in planned.output
    assert "delete" not in planned.output
    markdown = run_cli(root, "plan", "--prune", "--format", "markdown", runtime=runtime).output
    assert "(`prune: false`):\n- `program.echo`" in markdown
    assert run_cli(root, "apply", "--auto-approve", "--prune", runtime=runtime).exit_code == 0
    assert runtime.program(program_id).name == "echo"
    assert "program.echo" in lock(root)["programs"]


def test_commands_that_edit_the_lockfile_take_the_apply_lock_and_replay_a_journal(
    tmp_path: Path,
) -> None:
    root, runtime = applied(tmp_path)
    # An apply that died left a step in its journal: a newer record of job.bell/plain.
    record = {**lock(root)["jobs"]["job.bell/plain"], "status": "FAILED", "id": "from-journal"}
    journal = root / ".qrt" / JOURNAL_NAME
    journal.write_bytes(journal_line("jobs", "job.bell/plain", record))

    with ApplyLock(root / ".qrt").hold():  # another apply runs: no edit, nothing written
        before = (root / "qrt.lock").read_bytes()
        for args in (("mv", "batch.bell", "batch.b2"), ("forget", "batch.bell")):
            done = qrt(root, *args)
            assert done.returncode == 1
            assert "another qrt apply is running" in done.stderr
        assert (root / "qrt.lock").read_bytes() == before

    assert run_cli(root, "mv", "batch.bell", "batch.b2").exit_code == 0
    assert lock(root)["jobs"]["job.b2/plain"]["id"] == "from-journal"  # replayed, then moved
    assert not journal.exists()


def test_embedded_runtime_mv_of_a_program_and_a_batch_reruns_nothing(tmp_path: Path) -> None:
    """The embedded runtime end to end: `qrt mv` of a program and a batch, then nothing reruns."""
    write(tmp_path, "circuits/bell.qasm", BELL)
    write(tmp_path, "programs/echo.py", PROGRAM_SOURCE)
    write(
        tmp_path,
        "manifests/all.yaml",
        """
        apiVersion: qrt/v1
        kind: Program
        name: echo
        source: ../programs/echo.py
        description: Echoes.
        max_execution_time: 60
        ---
        apiVersion: qrt/v1
        kind: JobBatch
        name: echoes
        program: echo
        jobs:
          - name: one
            inputs: {iterations: 1}
        """,
    )
    assert qrt(tmp_path, "apply", "--auto-approve").returncode == 0
    first = lock(tmp_path)
    rename_in(tmp_path, "manifests/all.yaml", "echo\n", "echo-v2\n")
    rename_in(tmp_path, "manifests/all.yaml", "name: echoes\n", "name: echoes-v2\n")
    assert qrt(tmp_path, "mv", "program.echo", "program.echo-v2").returncode == 0
    assert qrt(tmp_path, "mv", "batch.echoes", "batch.echoes-v2").returncode == 0
    done = qrt(tmp_path, "apply", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Apply complete: 1 update (1 action, 0 failed)" in done.stdout
    listed = json.loads(qrt(tmp_path, "programs", "--json").stdout)
    assert [p["name"] for p in listed] == ["echo-v2"]
    after = lock(tmp_path)
    assert after["jobs"]["job.echoes-v2/one"]["id"] == first["jobs"]["job.echoes/one"]["id"]
    assert qrt(tmp_path, "plan", "--detailed-exitcode").returncode == 0


def test_every_action_kind_renders_in_every_view() -> None:
    from qrt_apply.plan import Action, Plan
    from qrt_apply.plan.model import ACTION_KINDS
    from qrt_apply.render.plan_view import render_plan

    plan = Plan(actions=tuple(Action(kind, f"job.b/{kind}", "why") for kind in ACTION_KINDS))
    for fmt, color in (("text", True), ("text", False), ("markdown", False), ("json", False)):
        text = render_plan(plan, fmt, color=color)
        assert all(f"job.b/{kind}" in text for kind in ACTION_KINDS)
    assert "1 to move" in render_plan(plan)


def test_refresh_collects_a_job_in_flight_at_its_moved_address(tmp_path: Path) -> None:
    from qrt_apply.api import Project
    from qrt_apply.render.console import NullConsole

    root = small_project(tmp_path)
    runtime = FakeRuntime()
    outcome = Project.load(root, runtime=runtime).apply(wait=False, console=NullConsole())
    assert "job.bell/plain" in outcome.pending
    rename_in(root, "manifests/all.yaml", "name: bell\n", "name: bell-states\n")
    write(root, "manifests/moved.yaml", MOVED)
    refreshed = Project.load(root, runtime=runtime).refresh(wait=True, console=NullConsole())
    assert refreshed.finished["job.bell-states/plain"] == "COMPLETED"
    jobs = lock(root)["jobs"]
    assert jobs["job.bell-states/plain"]["status"] == "COMPLETED"
    assert not [a for a in jobs if a.startswith("job.bell/")]


def test_a_saved_plan_with_moves_applies_exactly(tmp_path: Path) -> None:
    root, runtime = applied(tmp_path)
    submitted = len(runtime.jobs_by_id)
    rename_in(root, "manifests/all.yaml", "name: bell\n", "name: bell-states\n")
    write(root, "manifests/moved.yaml", MOVED)
    saved = run_cli(root, "plan", "--out", str(root / "plan.json"), runtime=runtime)
    assert saved.exit_code == 0, saved.output
    done = run_cli(root, "apply", str(root / "plan.json"), runtime=runtime)
    assert done.exit_code == 0, done.output
    assert len(runtime.jobs_by_id) == submitted
    assert sorted(a for a in lock(root)["jobs"] if a.startswith("job.bell-states/")) == [
        "job.bell-states/plain",
        "job.bell-states/shots-10",
        "job.bell-states/shots-20",
    ]
    # the plan file is stale now: the lockfile moved on
    assert run_cli(root, "apply", str(root / "plan.json"), runtime=runtime).exit_code == 1
