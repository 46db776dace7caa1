"""qrt.lock merges by address: the three-way logic, and git with `qrt merge-lockfile` as the merge
driver on real branches (clean where plain git conflicts; a real conflict marked and refused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qrt_apply.errors import LockfileError
from qrt_apply.lockfile import Lockfile
from qrt_apply.lockmerge import merge_lock_data, render_merge
from qrt_apply.runtime.base import Target

from projects import BELL, qrt, write

TARGET = {"channel": "embedded", "url": ".qrt", "instance": None}


def lock(jobs: dict, programs: dict | None = None) -> dict:
    return {"version": 1, "target": TARGET, "programs": programs or {}, "jobs": jobs}


def rec(name: str, status: str = "COMPLETED") -> dict:
    return {"id": f"id-{name}", "status": status, "digest": f"d-{name}"}


BASE = lock({"job.b/a": rec("a"), "job.b/c": rec("c"), "job.b/e": rec("e")})


def test_different_addresses_merge_whatever_their_order() -> None:
    ours = lock({**BASE["jobs"], "job.b/b": rec("b"), "job.b/a": rec("a", "FAILED")})
    theirs = lock({**BASE["jobs"], "job.b/bb": rec("bb")})
    del theirs["jobs"]["job.b/c"]
    result = merge_lock_data(BASE, ours, theirs)
    assert result.clean
    assert result.data["jobs"] == {
        "job.b/a": rec("a", "FAILED"),
        "job.b/b": rec("b"),
        "job.b/bb": rec("bb"),
        "job.b/e": rec("e"),
    }


def test_same_change_on_both_sides_and_both_removed_are_clean() -> None:
    ours = lock({"job.b/a": rec("a", "FAILED"), "job.b/e": rec("e")})
    theirs = lock({"job.b/a": rec("a", "FAILED"), "job.b/e": rec("e")})
    result = merge_lock_data(BASE, ours, theirs)
    assert result.clean
    assert result.data["jobs"] == {"job.b/a": rec("a", "FAILED"), "job.b/e": rec("e")}


def test_both_added_the_file_merges_against_nothing() -> None:
    result = merge_lock_data(None, lock({"job.b/a": rec("a")}), lock({"job.b/z": rec("z")}))
    assert result.clean and sorted(result.data["jobs"]) == ["job.b/a", "job.b/z"]


def test_changed_differently_and_changed_versus_removed_conflict() -> None:
    ours = lock({**BASE["jobs"], "job.b/a": rec("a", "FAILED"), "job.b/c": rec("c", "FAILED")})
    theirs = lock({"job.b/a": rec("a", "CANCELLED"), "job.b/e": rec("e")})
    result = merge_lock_data(BASE, ours, theirs)
    assert [c.describe() for c in result.conflicts] == [
        "job.b/a (changed differently on both sides)",
        "job.b/c (removed in theirs, changed in the other)",
    ]


def test_another_target_on_each_side_conflicts() -> None:
    other = {**TARGET, "url": "https://a.example"}
    third = {**TARGET, "url": "https://b.example"}
    result = merge_lock_data(BASE, {**BASE, "target": other}, {**BASE, "target": third})
    assert [c.key for c in result.conflicts] == [("target",)]


def test_other_lockfile_versions_are_refused() -> None:
    with pytest.raises(LockfileError, match="different versions"):
        merge_lock_data(BASE, BASE, {**BASE, "version": 2})


def test_conflict_markers_hold_each_side_and_resolve_to_valid_json(tmp_path: Path) -> None:
    ours = lock({**BASE["jobs"], "job.b/a": rec("a", "FAILED")})
    theirs = lock({**BASE["jobs"], "job.b/a": rec("a", "CANCELLED")})
    del theirs["jobs"]["job.b/e"]
    text = render_merge(merge_lock_data(BASE, ours, theirs), tmp_path / "qrt.lock")
    lines = text.splitlines()
    start, middle, end = (lines.index(m) for m in ("<<<<<<< ours", "=======", ">>>>>>> theirs"))
    assert '"status": "FAILED"' in "\n".join(lines[start:middle])
    assert '"status": "CANCELLED"' in "\n".join(lines[middle:end])
    assert '"job.b/e"' not in text  # merged (removed in theirs) outside the markers
    for keep in ("ours", "theirs"):
        chosen = lines[start + 1 : middle] if keep == "ours" else lines[middle + 1 : end]
        resolved = json.loads("\n".join(lines[:start] + chosen + lines[end + 1 :]))
        expected = ours if keep == "ours" else theirs
        assert resolved["jobs"] == {k: v for k, v in expected["jobs"].items() if k != "job.b/e"}
    path = tmp_path / "qrt.lock"
    path.write_text(text, "utf-8")
    with pytest.raises(LockfileError, match="unresolved merge conflicts"):
        Lockfile.load(path)


# --- real git -----------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "HOME": str(root / "home")}
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stdout}{done.stderr}")
    return done


def use_driver(root: Path) -> None:
    driver = f"{sys.executable} -m qrt_apply merge-lockfile %O %A %B %P"
    git(root, "config", "merge.qrt.driver", driver)


def batch(name: str, jobs: dict[str, int]) -> str:
    lines = [
        "apiVersion: qrt/v1",
        "kind: JobBatch",
        f"name: {name}",
        "program: sampler",
        "backend: aer_simulator",
        "jobs:",
    ]
    for job, shots in jobs.items():
        lines += [
            f"  - name: {job}",
            "    inputs:",
            "      pubs:",
            "        - circuit: {$file: ../circuits/bell.qasm}",
            f"          shots: {shots}",
        ]
    return "\n".join(lines) + "\n"


def new_repo(root: Path) -> None:
    write(root, "circuits/bell.qasm", BELL)
    write(root, ".gitignore", ".qrt/\nhome/\n")
    write(root, ".gitattributes", "qrt.lock merge=qrt\n")
    git(root, "init", "-q", "-b", "main")


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def apply(root: Path, *args: str) -> None:
    done = qrt(root, "apply", "--auto-approve", *args)
    assert done.returncode == 0, done.stdout + done.stderr


def test_branches_adding_neighbours_changing_and_removing_merge_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    new_repo(root)
    write(root, "manifests/p.yaml", batch("p", {"a": 10, "z": 10}))
    write(root, "manifests/q.yaml", batch("q", {"a": 10, "b": 10}))
    apply(root)
    commit(root, "p and q")

    # x: a new batch bell-x, and job.p/z changed (the entry just before job.q/a)
    git(root, "checkout", "-q", "-b", "x")
    write(root, "manifests/bell-x.yaml", batch("bell-x", {"one": 10}))
    write(root, "manifests/p.yaml", batch("p", {"a": 10, "z": 20}))
    apply(root)
    commit(root, "x")
    x_lock = json.loads((root / "qrt.lock").read_text("utf-8"))

    # y: a new batch bell-y (sorts right after bell-x), and job.q/a removed
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-q", "-b", "y")
    write(root, "manifests/bell-y.yaml", batch("bell-y", {"one": 10}))
    write(root, "manifests/q.yaml", batch("q", {"b": 10}))
    apply(root, "--prune")
    commit(root, "y")
    y_lock = json.loads((root / "qrt.lock").read_text("utf-8"))

    # Plain git's line merge conflicts here: the case the driver exists for.
    assert git(root, "merge", "--no-edit", "x", check=False).returncode != 0
    assert git(root, "diff", "--name-only", "--diff-filter=U").stdout == "qrt.lock\n"
    git(root, "merge", "--abort")

    use_driver(root)
    merged = git(root, "merge", "--no-edit", "x", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    data = json.loads((root / "qrt.lock").read_text("utf-8"))
    assert sorted(data["jobs"]) == [
        "job.bell-x/one",
        "job.bell-y/one",
        "job.p/a",
        "job.p/z",
        "job.q/b",
    ]
    assert data["jobs"]["job.p/z"] == x_lock["jobs"]["job.p/z"]
    assert data["jobs"]["job.bell-y/one"] == y_lock["jobs"]["job.bell-y/one"]
    # Written in the lockfile's own layout, and qrt agrees with the merged manifests.
    assert (root / "qrt.lock").read_text("utf-8") == Lockfile.load(root / "qrt.lock").render()
    for args in (("--lock-only",), ()):
        planned = qrt(root, "plan", "--detailed-exitcode", *args)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert "No changes." in planned.stdout


def test_a_real_conflict_stops_the_merge_and_qrt_refuses_the_file(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    new_repo(root)
    write(root, "manifests/p.yaml", batch("p", {"a": 10}))
    path = root / "qrt.lock"
    base = Lockfile.load(path)
    base.set_target(Target("embedded", ".qrt"))
    base.set_job("job.p/a", rec("a"))
    base.set_job("job.p/b", rec("b"))
    commit(root, "base")
    use_driver(root)
    for branch, status in (("x", "FAILED"), ("y", "CANCELLED")):
        git(root, "checkout", "-q", "-b", branch, "main")
        edited = Lockfile.load(path)
        edited.set_job("job.p/a", rec("a", status))
        if branch == "x":
            edited.set_job("job.p/c", rec("c"))
        commit(root, branch)

    merged = git(root, "merge", "--no-edit", "x", check=False)
    assert merged.returncode != 0
    assert "job.p/a (changed differently on both sides)" in merged.stderr
    assert "qrt.lock" in git(root, "diff", "--name-only", "--diff-filter=U").stdout
    text = path.read_text("utf-8")
    assert text.count("<<<<<<< ours") == 1 and '"job.p/c"' in text  # the rest is merged
    refused = qrt(root, "plan", "--lock-only")
    assert refused.returncode == 1
    assert "unresolved merge conflicts" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_files_qrt_cannot_read_are_merged_as_text(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qrt_apply.cli import cli

    paths = {name: tmp_path / name for name in ("base", "ours", "theirs")}
    for name, text in (("base", "a\nb\nc\n"), ("ours", "A\nb\nc\n"), ("theirs", "a\nb\nC\n")):
        paths[name].write_text(text, "utf-8")
    args = ["merge-lockfile", *(str(paths[n]) for n in ("base", "ours", "theirs")), "qrt.lock"]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert "merging it as text" in done.output
    assert paths["ours"].read_text("utf-8") == "A\nb\nC\n"
    paths["theirs"].write_text("Z\nb\nC\n", "utf-8")  # both changed the first line
    assert CliRunner().invoke(cli, args).exit_code == 1
    assert "<<<<<<< ours" in paths["ours"].read_text("utf-8")
