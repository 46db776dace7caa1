"""The qrt command line end to end: exit codes, messages, and the embedded runtime for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrt_apply.cli import AppContext, cli

from fakes import FakeRuntime
from projects import qrt, small_project, write

SLOW = """\
import time

def main(backend, user_messenger, n, seconds=0.0, fail=False):
    user_messenger.publish({"started": n})
    time.sleep(seconds)
    if fail:
        raise ValueError(f"job {n} was told to fail")
    return {"n": n}
"""


def run_cli(root: Path, *args: str, runtime=None):
    obj = AppContext(project_dir=root, _runtime=runtime)
    return CliRunner().invoke(cli, ["-C", str(root), *args], obj=obj)


def lock(root: Path) -> dict:
    return json.loads((root / "qrt.lock").read_text())


def slow_project(root: Path, *, jobs: list[str], max_execution_time: int = 60) -> Path:
    """A program that sleeps (and may fail), and a batch with one job per flow-style YAML entry."""
    write(root, "programs/slow.py", SLOW)
    manifest = (
        "apiVersion: qrt/v1\nkind: Program\nname: slow\nsource: ../programs/slow.py\n"
        f"description: Sleeps, then returns n.\nmax_execution_time: {max_execution_time}\n"
        "---\napiVersion: qrt/v1\nkind: JobBatch\nname: work\nprogram: slow\njobs:\n"
    ) + "".join(f"  - {job}\n" for job in jobs)
    write(root, "manifests/slow.yaml", manifest)
    return root


def test_plan_exit_codes_with_fake_runtime(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    result = run_cli(root, "plan", "--detailed-exitcode", runtime=runtime)
    assert result.exit_code == 2, result.output
    assert "Plan: 1 to create, 5 to run." in result.output
    assert run_cli(root, "plan", runtime=runtime).exit_code == 0
    result = run_cli(root, "apply", "--auto-approve", runtime=runtime)
    assert result.exit_code == 0, result.output
    result = run_cli(root, "plan", "--detailed-exitcode", runtime=runtime)
    assert result.exit_code == 0 and "No changes." in result.output


def test_plan_formats_and_lock_only(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    data = json.loads(run_cli(root, "plan", "--format", "json", runtime=runtime).output)
    assert data["summary"] == {"create": 1, "run": 5} and data["has_changes"] is True
    markdown = run_cli(root, "plan", "--format", "markdown", runtime=runtime).output
    assert "| `+` | `program.echo` | create |" in markdown
    # --lock-only never opens a runtime: no .qrt directory appears
    result = CliRunner().invoke(
        cli, ["-C", str(root), "plan", "--lock-only", "--detailed-exitcode"]
    )
    assert result.exit_code == 2 and not (root / ".qrt").exists()


def test_saved_plan_applies_exactly_and_goes_stale(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    planfile = tmp_path / "plan.json"
    assert (
        run_cli(
            root, "plan", "--out", str(planfile), "--target", "job.bell/plain", runtime=runtime
        ).exit_code
        == 0
    )
    result = run_cli(root, "apply", str(planfile), runtime=runtime)
    assert result.exit_code == 0, result.output
    assert set(lock(root)["jobs"]) == {"job.bell/plain"}
    result = run_cli(root, "apply", str(planfile), runtime=runtime)
    assert result.exit_code == 1 and "stale plan" in result.output


def test_malformed_manifest_is_one_clear_message_and_touches_nothing(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    write(
        root,
        "manifests/bad.yaml",
        "apiVersion: qrt/v1\nkind: Program\nname: x\nsource: 3\nmax_execution_time: 5\n",
    )
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        done = qrt(root, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "manifests/bad.yaml:4:" in done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert not (root / "qrt.lock").exists()
    assert not (root / ".qrt" / "runtime.db").exists()


def test_usage_error_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", "--no-such-flag"])
    assert result.exit_code == 1
    assert "No such option" in result.output


def test_apply_without_terminal_needs_auto_approve(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    result = run_cli(root, "apply", runtime=FakeRuntime())
    assert result.exit_code == 1 and "--auto-approve" in result.output
    assert not (root / "qrt.lock").exists()


@pytest.mark.slow
def test_failures_and_timeouts_are_recorded(tmp_path: Path) -> None:
    root = slow_project(
        tmp_path,
        max_execution_time=2,
        jobs=[
            "{name: ok, inputs: {n: 1}}",
            "{name: boom, inputs: {n: 2, fail: true}}",
            "{name: sleepy, inputs: {n: 3, seconds: 30}}",
        ],
    )
    done = qrt(root, "apply", "--auto-approve", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "did not complete: job.work/boom, job.work/sleepy" in done.stderr
    jobs = lock(root)["jobs"]
    assert jobs["job.work/ok"]["status"] == "COMPLETED"
    assert jobs["job.work/ok"]["result"] == {"n": 1}
    assert jobs["job.work/ok"]["interim_results"] == [{"started": 1}]
    assert jobs["job.work/boom"]["status"] == "FAILED"
    assert "Traceback" in jobs["job.work/boom"]["error"]
    assert "ValueError: job 2 was told to fail" in jobs["job.work/boom"]["error"]
    assert jobs["job.work/sleepy"]["status"] == "CANCELLED"
    assert jobs["job.work/sleepy"]["reason"] == "RAN TOO LONG"
    plan = qrt(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 2
    assert "job.work/boom  rerun: last run FAILED" in plan.stdout
    assert "job.work/sleepy  rerun: last run CANCELLED (RAN TOO LONG)" in plan.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_apply_resumes_without_rerunning_completed_jobs(tmp_path: Path, sig) -> None:
    jobs = [
        f"{{name: j{i}, inputs: {{n: {i}, seconds: {0.2 if i == 0 else 3}}}}}" for i in range(4)
    ]
    root = slow_project(tmp_path, jobs=jobs)
    env = {**os.environ, "HOME": str(root / "home")}
    process = subprocess.Popen(
        [sys.executable, "-m", "qrt_apply", "-C", str(root), "apply", "--auto-approve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    completed: dict[str, str] = {}
    while time.monotonic() < deadline and not completed:
        time.sleep(0.2)
        assert process.poll() is None, process.communicate()
        if (root / "qrt.lock").exists():
            data = lock(root)  # must always parse, even mid-apply
            completed = {
                a: r["id"] for a, r in data["jobs"].items() if r.get("status") == "COMPLETED"
            }
    assert completed, "no job completed in time"
    process.send_signal(sig)
    process.communicate(timeout=60)
    data = lock(root)
    assert any(r.get("status") != "COMPLETED" for r in data["jobs"].values()), "killed too late"
    done = qrt(root, "apply", "--auto-approve", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    final = lock(root)["jobs"]
    assert all(r["status"] == "COMPLETED" for r in final.values())
    for address, job_id in completed.items():
        assert final[address]["id"] == job_id, f"{address} was rerun"
        assert f"{address}: submitted" not in done.stdout
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 0


def test_import_adopts_an_existing_program(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    source = (root / "programs/echo.py").read_text()
    program_id = runtime.upload_program(
        source, {"name": "echo", "max_execution_time": 60, "description": "old words"}
    )
    result = run_cli(root, "plan", runtime=runtime)
    assert result.exit_code == 1 and f"qrt import program.echo {program_id}" in result.output
    result = run_cli(root, "import", "program.echo", program_id, runtime=runtime)
    assert result.exit_code == 0, result.output
    plan = json.loads(run_cli(root, "plan", "--format", "json", runtime=runtime).output)
    program_actions = [a for a in plan["actions"] if a["address"] == "program.echo"]
    assert [a["action"] for a in program_actions] == ["update"]
    assert program_actions[0]["details"]["touches"] == ["metadata"]
    assert {c["field"] for c in program_actions[0]["changes"]} == {"description", "spec.parameters"}


def test_show_lists_one_record_a_batch_or_everything(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    empty = run_cli(root, "show", runtime=runtime)
    assert empty.exit_code == 0 and empty.output == "qrt.lock records nothing yet.\n"
    assert run_cli(root, "apply", "--auto-approve", runtime=runtime).exit_code == 0
    recorded = lock(root)
    listing = run_cli(root, "show", runtime=runtime)
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert [line.split()[0] for line in lines] == ["program.echo", *sorted(recorded["jobs"])]
    assert lines[1].split()[1:] == [recorded["jobs"]["job.bell/plain"]["id"], "COMPLETED"]
    everything = json.loads(run_cli(root, "show", "--json", runtime=runtime).output)
    assert set(everything) == {"programs", "jobs"} and set(everything["jobs"]) == set(
        recorded["jobs"]
    )
    one = run_cli(root, "show", "job.echoes/two", runtime=runtime)
    assert one.exit_code == 0 and "status: COMPLETED" in one.output
    assert "definition" not in one.output and "result:" not in one.output
    record = json.loads(run_cli(root, "show", "job.echoes/two", "--json", runtime=runtime).output)
    assert record == everything["jobs"]["job.echoes/two"]
    batch = json.loads(run_cli(root, "show", "batch.echoes", "--json", runtime=runtime).output)
    assert list(batch) == ["job.echoes/one", "job.echoes/two"]
    missing = run_cli(root, "show", "program.nope", runtime=runtime)
    assert missing.exit_code == 1 and "program.nope is not in qrt.lock" in missing.output


def test_unlock_refuses_a_live_lock_and_clears_a_stale_one(tmp_path: Path) -> None:
    from qrt_apply.lockfile import ApplyLock

    root = small_project(tmp_path)
    lock = ApplyLock(root / ".qrt")
    with lock.hold():
        result = run_cli(root, "apply", "--auto-approve", runtime=FakeRuntime())
        assert result.exit_code == 1 and "another qrt apply is running" in result.output
        result = run_cli(root, "unlock")
        assert result.exit_code == 1 and "still running" in result.output
    (root / ".qrt" / "apply.lock.json").write_text('{"pid": 999999, "host": "gone"}')
    result = run_cli(root, "unlock")
    assert result.exit_code == 0 and "Released the apply lock held by pid 999999" in result.output
    assert not (root / ".qrt" / "apply.lock.json").exists()


@pytest.mark.slow
def test_no_wait_then_refresh_collects(tmp_path: Path) -> None:
    root = slow_project(
        tmp_path, jobs=["{name: a, inputs: {n: 1, seconds: 1}}", "{name: b, inputs: {n: 2}}"]
    )
    done = qrt(root, "apply", "--auto-approve", "--no-wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 job(s) still running; `qrt refresh` collects them." in done.stdout
    assert {r["status"] for r in lock(root)["jobs"].values()} <= {"QUEUED", "RUNNING"}
    plan = qrt(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "job.work/a  wait:" in plan.stdout
    done = qrt(root, "refresh", "--wait")  # plain refresh polls once; --wait collects them all
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = lock(root)["jobs"]
    assert {r["status"] for r in jobs.values()} == {"COMPLETED"}
    assert jobs["job.work/b"]["result"] == {"n": 2}
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 0
