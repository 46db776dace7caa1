"""Hostile manifests: each one ends ``qrt validate`` with one file:line message, exit code 1, no
traceback, in bounded memory, and ``plan``/``apply`` on one send nothing and write no lockfile.

The cases are generated (tests/fixtures/hostile_manifests/cases.py). Memory is the child's own
peak RSS from ``os.wait4`` (the per-child form of ``getrusage(RUSAGE_CHILDREN)``, so other tests'
children do not count); time is only a generous timeout, never a speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures.hostile_manifests.cases import CASES, MANIFEST, Expect

from qrt_apply.cli import AppContext, cli

from fakes import FakeRuntime
from projects import small_project

MAX_RSS_BYTES = 300 * 1024 * 1024
TIMEOUT_S = 60.0


def run_measured(root: Path, *args: str) -> tuple[int, str, str, int]:
    """``qrt -C root ARGS`` in a child: (exit code, stdout, stderr, peak RSS in bytes)."""
    out, err = root / "child.out", root / "child.err"
    env = {**os.environ, "HOME": str(root / "home")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "qrt_apply", "-C", str(root), *args],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    timer = threading.Timer(TIMEOUT_S, child.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    assert child.returncode != -9, f"qrt {' '.join(args)} ran longer than {TIMEOUT_S} s"
    rss = usage.ru_maxrss * 1024  # kilobytes on Linux
    return child.returncode, out.read_text(), err.read_text(), rss


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_refuses_hostile_manifest(tmp_path: Path, name: str) -> None:
    expect = CASES[name](tmp_path)
    code, stdout, stderr, rss = run_measured(tmp_path, "validate")
    assert code == 1, stdout + stderr
    assert "Traceback" not in stderr and "Error: unexpected" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    where = re.escape(expect.file) + (f":{expect.line}: " if expect.line else ": ")
    assert re.match(f"Error: {where}", lines[0]), (lines[0], expect)
    assert expect.fragment in lines[0], (lines[0], expect)
    assert rss <= MAX_RSS_BYTES, f"peak RSS {rss / 2**20:.0f} MB"


def test_every_kind_of_limit_is_covered() -> None:
    assert len(CASES) >= 40


class Watching:
    """A runtime that records every attribute used on it: with hostile manifests, none may be."""

    def __init__(self) -> None:
        self.inner = FakeRuntime()
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)
        return getattr(self.inner, name)


def _invoke(root: Path, runtime: Watching, *args: str) -> Any:
    obj = AppContext(project_dir=root, _runtime=runtime)  # type: ignore[arg-type]
    return CliRunner().invoke(cli, ["-C", str(root), *args], obj=obj)


def test_watching_runtime_sees_a_normal_plan(tmp_path: Path) -> None:
    # The control for the test below: a valid project's plan does reach the runtime.
    runtime = Watching()
    result = _invoke(small_project(tmp_path), runtime, "plan")
    assert result.exit_code == 0, result.output
    assert runtime.used


@pytest.mark.parametrize(
    "name", ["billion_laughs", "matrix_billion", "file_sparse_1gb", "deep_flow_sequence"]
)
@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")])
def test_plan_and_apply_send_nothing_and_write_no_lockfile(
    tmp_path: Path, name: str, command: tuple[str, ...]
) -> None:
    expect: Expect = CASES[name](tmp_path)
    runtime = Watching()
    result = _invoke(tmp_path, runtime, *command)
    assert result.exit_code == 1, result.output
    assert expect.file in result.output and MANIFEST == expect.file
    assert runtime.used == []
    assert not (tmp_path / "qrt.lock").exists()
    assert not (tmp_path / ".qrt").exists()
