"""Terminal conventions: NO_COLOR / --no-color, coloured plan symbols on a terminal only, progress
(a status line on terminals, a periodic plain line elsewhere; its timing driven by a fake clock),
--json on validate, apply and refresh, and --debug / QRT_DEBUG anywhere."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qrt_apply.api import ApplyResult, Project, RefreshResult
from qrt_apply.apply import ApplyReport
from qrt_apply.cli import AppContext, cli, debug_requested
from qrt_apply.plan.model import Action, Plan
from qrt_apply.render.console import NullConsole
from qrt_apply.render.progress import (
    Counts,
    Progress,
    ProgressConsole,
    count_progress,
    format_elapsed,
)

from fakes import FakeRuntime
from projects import REPO, small_project, write

ESC = "\x1b"


def run_cli(root: Path, *args: str, runtime=None, color: bool = False, env=None):
    obj = AppContext(project_dir=root, _runtime=runtime)
    return CliRunner().invoke(cli, ["-C", str(root), *args], obj=obj, color=color, env=env)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plan_of(*kinds: str) -> Plan:
    return Plan(actions=tuple(Action(k, f"job.b/{i}", "why") for i, k in enumerate(kinds)))


# --- progress logic (no real time involved) -----------------------------------------------------
def test_plain_progress_line_every_ten_seconds_of_the_injected_clock() -> None:
    clock, out = Clock(), io.StringIO()
    counts = Counts("apply", 120, 500, 2, 30, 0.0)
    progress = Progress(out, lambda elapsed: counts, live=False, every=10.0, clock=clock)
    progress.tick()
    clock.now += 9.9
    progress.tick()
    assert out.getvalue() == ""  # not yet ten seconds
    clock.now += 0.1
    progress.tick()
    progress.tick()  # the same moment: nothing more
    clock.now += 25
    progress.tick()
    assert (
        out.getvalue().splitlines()
        == ["apply: 120/500 done, 2 failed, 0.0s elapsed, waiting on 30 jobs"] * 2
    )
    assert ESC not in out.getvalue() and "\r" not in out.getvalue()


def test_elapsed_in_the_line_comes_from_the_clock() -> None:
    clock, out = Clock(), io.StringIO()
    plan, report = plan_of("run", "run", "run"), ApplyReport()

    def counts(elapsed: float) -> Counts:
        return count_progress("apply", plan, report, collect=True, elapsed=elapsed)

    progress = Progress(out, counts, live=False, every=10.0, clock=clock)
    report.done["run"] = 3
    report.finished["job.b/0"] = "FAILED"
    clock.now += 80
    progress.tick()
    assert out.getvalue() == "apply: 1/3 done, 1 failed, 1m20s elapsed, waiting on 2 jobs\n"


def test_live_status_line_is_redrawn_in_place_and_cleared_around_steps() -> None:
    clock, out = Clock(), io.StringIO()
    n = {"done": 0}
    progress = Progress(
        out,
        lambda e: Counts("refresh", n["done"], 10, 0, 10 - n["done"], e),
        live=True,
        redraw=0.5,
        clock=clock,
    )
    clock.now += 0.5
    progress.tick()
    first = "refresh: 0/10 done, 0 failed, 0.5s elapsed, waiting on 10 jobs"
    assert out.getvalue() == "\r" + first
    with progress.above():
        out.write("job.b/1: COMPLETED\n")
        n["done"] = 10
    # erased (spaces, no escape sequence), the step line, then the line drawn again, padded over
    # the longer one it replaces
    second = "refresh: 10/10 done, 0 failed, 0.5s elapsed"
    assert out.getvalue() == (
        "\r" + first + "\r" + " " * len(first) + "\r" + "job.b/1: COMPLETED\n" + "\r" + second
    )
    progress.close()
    assert out.getvalue().endswith("\r" + " " * len(second) + "\r")
    assert ESC not in out.getvalue()


def test_live_line_is_cut_to_the_width() -> None:
    out = io.StringIO()
    progress = Progress(
        out, lambda e: Counts("apply", 1, 2, 0, 1, e), live=True, clock=Clock(), width=20
    )
    progress.tick(force=True)
    assert out.getvalue() == "\rapply: 1/2 done, 0 …"


def test_counts_without_waiting_count_submissions() -> None:
    plan = plan_of("run", "rerun", "wait", "forget")
    report = ApplyReport()
    report.done.update({"run": 1, "forget": 1})
    counts = count_progress("apply", plan, report, collect=False, elapsed=1.0)
    assert (counts.done, counts.total, counts.waiting) == (3, 4, 0)  # run + wait + forget
    counts = count_progress("apply", plan, report, collect=True, elapsed=1.0)
    assert (counts.done, counts.waiting) == (1, 2)


def test_format_elapsed() -> None:
    assert [format_elapsed(s) for s in (0, 4.25, 59.9, 80, 3600 + 187)] == [
        "0.0s",
        "4.2s",
        "59.9s",
        "1m20s",
        "1h03m07s",
    ]


def test_progress_console_in_an_api_apply_writes_plain_lines(tmp_path: Path) -> None:
    """A non-terminal stream, a clock that moves 11 s per reading: each step is followed by a due
    progress line (a ticker thread may add more; each is well-formed)."""
    root = small_project(tmp_path)
    clock, out = Clock(), io.StringIO()

    def later() -> float:
        clock.now += 11
        return clock.now

    inner = NullConsole()
    console = ProgressConsole(inner, out, live=False, clock=later)
    with Project.load(root, runtime=FakeRuntime()) as project:
        outcome = project.apply(console=console)
    assert outcome.outcome == "applied" and len(inner.lines) == 11  # 1 create, 5 submit, 5 collect
    lines = out.getvalue().splitlines()
    pattern = re.compile(
        r"apply: \d/6 done, 0 failed, (\d+\.\ds|\d+m\d\ds) elapsed(, waiting on \d jobs?)?"
    )
    assert len(lines) >= len(inner.lines) and all(pattern.fullmatch(line) for line in lines)
    assert "apply: 6/6 done, 0 failed" in out.getvalue()


# --- colour --------------------------------------------------------------------------------------
def test_plan_symbols_coloured_only_when_colour_is_on(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    coloured = run_cli(root, "plan", runtime=runtime, color=True).output
    assert "\x1b[32m\x1b[1m  +\x1b[0m program.echo" in coloured
    assert ESC not in run_cli(root, "plan", runtime=runtime).output  # not a terminal
    for args, env in (
        (["plan", "--no-color"], None),
        (["--no-color", "plan"], None),
        (["plan"], {"NO_COLOR": "1"}),
        (["plan"], {"NO_COLOR": "anything"}),
    ):
        result = run_cli(root, *args, runtime=runtime, color=True, env=env)
        assert result.exit_code == 0 and ESC not in result.output, (args, env)
    # apply's steps come from worker threads: NO_COLOR holds there too
    result = run_cli(
        root, "apply", "--auto-approve", runtime=runtime, color=True, env={"NO_COLOR": "1"}
    )
    assert result.exit_code == 0 and "program.echo: created" in result.output
    assert ESC not in result.output
    assert re.search(
        r"Apply complete: 1 create, 5 run \(6 actions, 0 failed\) in \d", result.output
    )


def _on_a_terminal(root: Path, *args: str, env: dict[str, str]) -> str:
    """Run the real CLI with stdin, stdout and stderr on a pseudo-terminal; its whole output."""
    leader, follower = pty.openpty()
    child_env = {**os.environ, "HOME": str(root / "home"), "PYTHONPATH": str(REPO), **env}
    for key in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "NO_COLOR", "QRT_DEBUG"):
        if key not in env:
            child_env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qrt_apply", "-C", str(root), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=child_env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode()
    return b"".join(chunks).decode()


def test_on_a_real_terminal(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    coloured = _on_a_terminal(root, "plan", env={})
    assert "\x1b[32m\x1b[1m  +\x1b[0m job.bell/plain" in coloured
    plain = _on_a_terminal(root, "apply", "--auto-approve", env={"NO_COLOR": "1"})
    assert ESC not in plain
    assert "\rapply: " in plain  # the status line, redrawn in place
    assert re.search(r"Apply complete: 1 create, 5 run \(6 actions, 0 failed\) in \d", plain)


# --- --json --------------------------------------------------------------------------------------
def test_validate_json(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    result = run_cli(root, "validate", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"valid": True, "programs": 1, "batches": 2, "jobs": 5}
    write(root, "manifests/bad.yaml", "apiVersion: qrt/v1\nkind: Program\nname: x\nsource: 3\n")
    result = run_cli(root, "validate", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and sorted(data["error"]) == ["line", "message", "path"]
    assert data["error"]["path"] == "manifests/bad.yaml" and isinstance(data["error"]["line"], int)
    assert data["error"]["message"].startswith("manifests/bad.yaml:")
    assert "Error: manifests/bad.yaml:" in result.stderr


def test_apply_and_refresh_json(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime(outcomes={"sampler": "FAILED"})
    refused = run_cli(root, "apply", "--json", runtime=runtime)
    assert refused.exit_code == 1 and "--auto-approve" in refused.stderr and not refused.stdout
    result = run_cli(root, "apply", "--auto-approve", "--no-wait", "--json", runtime=runtime)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stdout is the document alone: steps went to stderr
    assert sorted(data) == sorted(ApplyResult(plan_of(), "x").to_json())
    assert data["outcome"] == "applied" and data["done"] == {"create": 1, "run": 5}
    assert data["plan"]["summary"] == {"create": 1, "run": 5} and data["failed"] == []
    assert len(data["pending"]) == 5 and isinstance(data["elapsed_seconds"], float)
    assert "program.echo: created" in result.stderr
    result = run_cli(root, "refresh", "--wait", "--json", runtime=runtime)
    assert result.exit_code == 1  # the sampler's jobs failed
    data = json.loads(result.stdout)
    assert sorted(data) == sorted(RefreshResult().to_json())
    assert data["failed"] == ["job.bell/plain", "job.bell/shots-10", "job.bell/shots-20"]
    assert data["in_flight"] == sorted(data["finished"]) and data["running"] == []
    nothing = json.loads(run_cli(root, "refresh", "--json", runtime=runtime).stdout)
    assert nothing == {
        "in_flight": [],
        "finished": {},
        "failed": [],
        "running": [],
        "elapsed_seconds": 0.0,
        "drift": {},
    }
    again = json.loads(run_cli(root, "apply", "--auto-approve", "--json", runtime=runtime).stdout)
    assert again["outcome"] == "applied" and again["plan"]["summary"] == {"rerun": 3}


# --- --debug -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, env",
    [
        (["--debug", "plan"], {}),
        (["plan", "--debug"], {}),
        (["plan"], {"QRT_DEBUG": "1"}),
    ],
)
def test_debug_anywhere_shows_the_traceback(tmp_path: Path, args, env) -> None:
    root = small_project(tmp_path)
    write(root, "manifests/bad.yaml", "apiVersion: qrt/v1\nkind: Nope\n")
    result = run_cli(root, *args, runtime=FakeRuntime(), env=env)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ManifestError" in result.stderr
    quiet = run_cli(root, "plan", runtime=FakeRuntime(), env={"QRT_DEBUG": "0"})
    assert quiet.exit_code == 1 and "Traceback" not in quiet.stderr


def test_global_flags_after_nested_commands(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    result = CliRunner().invoke(cli, ["account", "list", "--debug", "--no-color"], env=home)
    assert result.exit_code == 0, result.output
    assert "--no-color" in CliRunner().invoke(cli, ["apply", "--help"]).output
    assert debug_requested(["plan", "--", "--debug"], environ={}) is False
    assert debug_requested(["plan"], environ={"QRT_DEBUG": "yes"}) is True
