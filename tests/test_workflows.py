"""The GitHub workflows `qrt init` writes, run step by step against the embedded runtime.

Each test reads a workflow file that `qrt init` wrote and runs its `run:` steps in order, as a GitHub
runner would (`bash --noprofile --norc -eo pipefail`, with the workflow's `env:` and the runner's
`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `RUNNER_TEMP`). What only GitHub has is replaced, and only that:

- `uses:` steps are not run: actions/checkout is the test's own checkout (a clone of a local bare
  repository for the apply workflow), actions/setup-python the test's interpreter;
- the step that installs qrt from PyPI is not run: the qrt under test is put on PATH instead;
- `gh` (GitHub's API) is a small script that keeps the pull request's comments in a local JSON file;
- `${{ ... }}` expressions take fixed values (secrets are unset, so empty, as on a fork).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from qrt_apply.scaffold import WORKFLOWS, init_project

from projects import qrt

SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
EXPRESSIONS = {
    "secrets.QISKIT_IBM_TOKEN": "",
    "secrets.QISKIT_IBM_URL": "",
    "secrets.QISKIT_IBM_INSTANCE": "",
    "secrets.QISKIT_IBM_CHANNEL": "",
    "github.token": "ghs_fake_token_for_tests",
    "github.repository": "octo/programs",
    "github.event.pull_request.number": "7",
    "github.ref": "refs/heads/main",
    "!cancelled()": "true",
}

FAKE_GH = """
import json, os, re, sys

state_file = os.environ["FAKE_GH_STATE"]
with open(state_file, encoding="utf-8") as f:
    state = json.load(f)
args = sys.argv[1:]
assert args[0] == "api", args
assert os.environ.get("GH_TOKEN"), "gh needs GH_TOKEN"
method, path, fields, slurp, paginate = "GET", None, {}, False, False
i = 1
while i < len(args):
    a = args[i]
    if a == "--method":
        method, i = args[i + 1], i + 2
    elif a == "-F":
        key, value = args[i + 1].split("=", 1)
        if value.startswith("@"):
            with open(value[1:], encoding="utf-8") as f:
                value = f.read()
        fields[key], i = value, i + 2
    elif a == "--slurp":
        slurp, i = True, i + 1
    elif a == "--paginate":
        paginate, i = True, i + 1
    elif a.startswith("-"):
        sys.exit(f"fake gh: unknown flag {a}")
    else:
        path, i = a, i + 1
state["calls"].append([method, path])
listing = re.fullmatch(r"repos/octo/programs/issues/7/comments", path)
one = re.fullmatch(r"repos/octo/programs/issues/comments/(\\d+)", path)
if method == "GET" and listing:
    if slurp and not paginate:
        sys.exit("fake gh: --slurp needs --paginate")
    comments = state["comments"]
    pages = [comments[k:k + 2] for k in range(0, len(comments), 2)] or [[]]  # two per page
    out = json.dumps(pages) if slurp else "".join(json.dumps(p) for p in pages)
elif method == "POST" and listing:
    comment = {"id": state["next_id"], "body": fields["body"]}
    state["next_id"] += 1
    state["comments"].append(comment)
    out = json.dumps(comment)
elif method == "PATCH" and one:
    (comment,) = [c for c in state["comments"] if c["id"] == int(one.group(1))]
    comment["body"] = fields["body"]
    out = json.dumps(comment)
else:
    sys.exit(f"fake gh: no such call {method} {path}")
with open(state_file, "w", encoding="utf-8") as f:
    json.dump(state, f)
print(out)
"""


def _expand(value: Any) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert expression in EXPRESSIONS, f"no value for ${{{{ {expression} }}}} in this test"
        return EXPRESSIONS[expression]

    return EXPRESSION.sub(one, str(value))


def _bin_dir(tmp_path: Path) -> Path:
    """qrt (the code under test), python and the fake gh, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "qrt": f'#!/bin/sh\nexec "{sys.executable}" -m qrt_apply "$@"\n',
        "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
        "gh": f"#!{sys.executable}\n{FAKE_GH}",
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text, "utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


class Runner:
    """Runs a workflow job's `run:` steps in order, as GitHub's runner would."""

    def __init__(self, tmp_path: Path, state: dict[str, Any]) -> None:
        self.tmp = tmp_path
        self.bin = _bin_dir(tmp_path)
        self.gh_state = tmp_path / "gh-state.json"
        self.gh_state.write_text(json.dumps(state), "utf-8")
        self.runs = 0

    def comments(self) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = json.loads(self.gh_state.read_text("utf-8"))["comments"]
        return comments

    def run_job(
        self, workflow_file: Path, workdir: Path, extra_env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Runs the workflow's one job; returns what was run and skipped, and the summary."""
        workflow = yaml.safe_load(workflow_file.read_text("utf-8"))
        # `shell: bash` is what makes GitHub run `bash --noprofile --norc -eo pipefail {0}`, as below.
        assert workflow["defaults"] == {"run": {"shell": "bash"}}
        ((_, job),) = workflow["jobs"].items()
        self.runs += 1
        temp = self.tmp / f"runner-temp-{self.runs}"
        temp.mkdir()
        summary, output = temp / "summary.md", temp / "output"
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.tmp / "home"),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "RUNNER_TEMP": str(temp),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_REF_NAME": "main",
            "GITHUB_SHA": "0" * 40,
            "FAKE_GH_STATE": str(self.gh_state),
            **{k: _expand(v) for k, v in (job.get("env") or {}).items()},
            **(extra_env or {}),
        }
        ran: list[str] = []
        skipped: list[str] = []
        for step in job["steps"]:
            name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            if "uses" in step:
                assert SHA_PINNED.match(step["uses"]), step["uses"]
                skipped.append(name)  # GitHub's actions: the test's own checkout and Python
                continue
            if "pip install" in step["run"]:
                assert '"qrt-apply==' in step["run"]  # a pinned release of qrt from PyPI
                skipped.append(name)  # the qrt under test is on PATH instead
                continue
            if "if" in step:
                assert _expand(step["if"]) == "true", step["if"]
            script = temp / f"step-{len(ran)}.sh"
            script.write_text(step["run"], "utf-8")
            step_env = {**env, **{k: _expand(v) for k, v in (step.get("env") or {}).items()}}
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=workdir,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"step {name!r} failed:\n{done.stdout}\n{done.stderr}"
            ran.append(name)
        return {
            "ran": ran,
            "skipped": skipped,
            "summary": summary.read_text("utf-8") if summary.exists() else "",
        }


def _qrt_lines(workflow_file: Path) -> list[str]:
    workflow = yaml.safe_load(workflow_file.read_text("utf-8"))
    ((_, job),) = workflow["jobs"].items()
    return [
        line.strip()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
        if line.strip().startswith("qrt ")
    ]


UNRELATED = [
    {"id": 901, "body": "Looks good to me."},
    {"id": 902, "body": "<!-- qrt-plan:prod -->\nthe prod environment's plan"},
    {"id": 903, "body": "Please rename the batch."},
]


def test_pull_request_workflow_steps_run_in_order_and_keep_one_comment(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_project(repo)
    workflow = repo / WORKFLOWS["plan"]
    assert _qrt_lines(workflow) == [
        "qrt validate",
        "qrt plan --lock-only",
        'qrt plan --detailed-exitcode --format markdown > "$RUNNER_TEMP/qrt-plan.md" '
        '2> "$RUNNER_TEMP/qrt-plan.err"',
    ]
    runner = Runner(tmp_path, {"comments": list(UNRELATED), "next_id": 1000, "calls": []})

    first = runner.run_job(workflow, repo)
    assert first["ran"] == [
        "qrt validate",
        "The lockfile reads and matches the manifests",
        "qrt plan",
        "Post the plan on the pull request",
        "Fail if qrt plan failed",
    ]
    assert first["skipped"] == [
        "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",
        "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97",
        "Install qrt",
    ]
    assert "program.ghz" in first["summary"] and "job.ghz/ghz-3" in first["summary"]
    (posted,) = [c for c in runner.comments() if c["body"].startswith("<!-- qrt-plan -->\n")]
    assert posted["id"] == 1000 and "job.bell/bell" in posted["body"]
    assert "1 to create, 3 to run" in posted["body"]

    # Merged and applied; then a new push to the pull request changes the Bell batch's shots.
    assert qrt(repo, "apply", "--auto-approve").returncode == 0
    batches = repo / "manifests" / "batches.yaml"
    batches.write_text(
        batches.read_text("utf-8").replace("default_shots: 1000", "default_shots: 2000")
    )
    second = runner.run_job(workflow, repo)
    assert second["ran"] == first["ran"]
    comments = runner.comments()
    assert [c["id"] for c in comments] == [901, 902, 903, 1000]  # edited in place, none added
    assert comments[:3] == UNRELATED
    assert "job.bell/bell" in comments[3]["body"] and "rerun" in comments[3]["body"]
    assert "job.ghz" not in comments[3]["body"]
    assert comments[3]["body"].startswith("<!-- qrt-plan -->\n### qrt plan")
    assert "rerun" in second["summary"]
    # An environment's plan (QRT_ENV) updates that environment's comment, and only it.
    (repo / "qrt.yaml").write_text("environments:\n  prod: {target: embedded}\n")
    before = runner.comments()
    third = runner.run_job(workflow, repo, {"QRT_ENV": "prod"})
    assert third["ran"] == first["ran"]
    after = runner.comments()
    assert [c["id"] for c in after] == [901, 902, 903, 1000]
    assert after[1]["body"].startswith("<!-- qrt-plan:prod -->\n")
    assert "1 to create, 3 to run" in after[1]["body"] and "`prod`" in after[1]["body"]
    assert [after[0], after[2], after[3]] == [before[0], before[2], before[3]]
    calls = json.loads(runner.gh_state.read_text("utf-8"))["calls"]
    assert calls == [
        ["GET", "repos/octo/programs/issues/7/comments"],
        ["POST", "repos/octo/programs/issues/7/comments"],
        ["GET", "repos/octo/programs/issues/7/comments"],
        ["PATCH", "repos/octo/programs/issues/comments/1000"],
        ["GET", "repos/octo/programs/issues/7/comments"],
        ["PATCH", "repos/octo/programs/issues/comments/902"],
    ]


def test_pull_request_workflow_fails_on_a_broken_manifest(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    init_project(repo)
    batches = repo / "manifests" / "batches.yaml"
    batches.write_text(batches.read_text("utf-8").replace("backend: aer_simulator", "backend: 3"))
    runner = Runner(tmp_path, {"comments": [], "next_id": 1, "calls": []})
    with pytest.raises(AssertionError, match="step 'qrt validate' failed"):
        runner.run_job(repo / WORKFLOWS["plan"], repo)
    assert runner.comments() == []


@pytest.mark.parametrize("environment", ["", "prod"])
def test_a_failing_plan_replaces_the_comment_and_fails_the_job(
    tmp_path: Path, environment: str
) -> None:
    repo = tmp_path / "repo"
    init_project(repo)
    if environment:  # chosen by qrt.yaml, not QRT_ENV: the failure's marker must still name it
        (repo / "qrt.yaml").write_text(
            "environments:\n  prod: {target: embedded}\ndefault_environment: prod\n"
        )
    marker = f"<!-- qrt-plan:{environment} -->" if environment else "<!-- qrt-plan -->"
    runner = Runner(tmp_path, {"comments": list(UNRELATED), "next_id": 1000, "calls": []})
    workflow = repo / WORKFLOWS["plan"]
    runner.run_job(workflow, repo)
    (planned,) = [c for c in runner.comments() if c["body"].startswith(marker + "\n")]
    assert "job.bell/bell" in planned["body"]

    # A push the manifests' offline checks accept but the runtime cannot plan: no such backend.
    batches = repo / "manifests" / "batches.yaml"
    batches.write_text(
        batches.read_text("utf-8").replace("backend: aer_simulator", "backend: fake_nowhere")
    )
    with pytest.raises(AssertionError, match="step 'Fail if qrt plan failed' failed") as caught:
        runner.run_job(workflow, repo)
    assert "qrt plan failed with status 1" in str(caught.value)
    comments = runner.comments()
    assert len(comments) == len(UNRELATED) + (0 if environment else 1)  # edited in place
    (failed,) = [c for c in comments if c["body"].startswith(marker + "\n")]
    assert failed["id"] == planned["id"]
    body = failed["body"]
    assert body.splitlines()[1] == "### qrt plan failed"
    assert "exited with status 1" in body and "job.bell/bell" not in body  # the stale plan is gone
    assert "backend 'fake_nowhere' is not offered by the runtime" in body
    assert "manifests/batches.yaml:" in body and str(tmp_path) not in body
    others = [c for c in comments if c["id"] != failed["id"]]
    assert others == [c for c in UNRELATED if c["id"] != failed["id"]]


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return done.stdout


def _origin_and_checkout(tmp_path: Path, qrt_yaml: str | None = None) -> tuple[Path, Path]:
    """A bare 'GitHub' repository holding what `qrt init` wrote (with ``qrt_yaml`` instead of its
    qrt.yaml), and the job's checkout of main's tip, as actions/checkout would make it."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    author = tmp_path / "author"
    init_project(author)
    if qrt_yaml is not None:
        (author / "qrt.yaml").write_text(qrt_yaml, "utf-8")
    _git(author, "init", "--quiet", "--initial-branch=main")
    _git(author, "add", "-A")
    _git(author, "commit", "--quiet", "-m", "qrt init")
    _git(author, "push", "--quiet", str(origin), "main")
    checkout = tmp_path / "checkout"
    _git(tmp_path, "clone", "--quiet", "--branch", "main", str(origin), str(checkout))
    return origin, checkout


def test_apply_workflow_applies_and_commits_the_lockfile(tmp_path: Path) -> None:
    origin, checkout = _origin_and_checkout(tmp_path)
    workflow = yaml.safe_load((checkout / WORKFLOWS["apply"]).read_text("utf-8"))
    assert workflow["concurrency"]["cancel-in-progress"] is False
    runner = Runner(tmp_path, {"comments": [], "next_id": 1, "calls": []})
    git_env = {"GIT_CONFIG_NOSYSTEM": "1"}
    first = runner.run_job(checkout / WORKFLOWS["apply"], checkout, git_env)
    assert first["ran"] == ["qrt apply", "Commit the lockfile and results"]
    log = _git(origin, "log", "--format=%s", "main")
    assert log.splitlines()[0].startswith("qrt apply: the lockfile after applying ")
    assert _git(origin, "show", "--name-only", "--format=", "main").split() == ["qrt.lock"]
    lock = json.loads(_git(origin, "show", "main:qrt.lock"))
    assert {j["status"] for j in lock["jobs"].values()} == {"COMPLETED"}
    assert "token" not in json.dumps(lock["target"]).lower()

    # The next push runs it again: nothing to apply, nothing to commit.
    second = runner.run_job(checkout / WORKFLOWS["apply"], checkout, git_env)
    assert second["ran"] == first["ran"]
    assert _git(origin, "log", "--format=%s", "main") == log


def test_apply_workflow_commits_an_environments_own_lockfile(tmp_path: Path) -> None:
    qrt_yaml = "environments:\n  dev: {}\n  prod:\n    lockfile: deploy/prod.lock\n"
    origin, checkout = _origin_and_checkout(tmp_path, qrt_yaml)
    runner = Runner(tmp_path, {"comments": [], "next_id": 1, "calls": []})
    env = {"GIT_CONFIG_NOSYSTEM": "1", "QRT_ENV": "prod"}
    runner.run_job(checkout / WORKFLOWS["apply"], checkout, env)
    assert _git(origin, "show", "--name-only", "--format=", "main").split() == ["deploy/prod.lock"]
    lock = json.loads(_git(origin, "show", "main:deploy/prod.lock"))
    assert lock["target"]["url"] == ".qrt/env/prod"
    assert {j["status"] for j in lock["jobs"].values()} == {"COMPLETED"}


def test_workflows_pin_actions_and_ask_for_least_permissions(tmp_path: Path) -> None:
    init_project(tmp_path)
    expected = {
        "plan": {"contents": "read", "pull-requests": "write"},
        "apply": {"contents": "write"},
    }
    for kind, path in WORKFLOWS.items():
        text = (tmp_path / path).read_text("utf-8")
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}
        ((_, job),) = workflow["jobs"].items()
        assert job["permissions"] == expected[kind]
        assert workflow["concurrency"]["group"].startswith(f"qrt-{kind}-")
        for step in job["steps"]:
            if "uses" in step:
                assert SHA_PINNED.match(step["uses"]), step["uses"]
        # Secrets reach qrt only as QISKIT_IBM_* variables.
        secret_keys = [k for k, v in job["env"].items() if "secrets." in str(v)]
        assert secret_keys and all(k.startswith("QISKIT_IBM_") for k in secret_keys)
        assert len(re.findall(r"\$\{\{\s*secrets\.", text)) == len(secret_keys)


def _action_step() -> tuple[dict[str, Any], dict[str, Any]]:
    action = yaml.safe_load((Path(__file__).resolve().parents[1] / "action.yml").read_text("utf-8"))
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "qrt"]
    return action, step


def _run_action(
    tmp_path: Path, workspace: Path, inputs: dict[str, str]
) -> tuple[int, dict[str, str]]:
    """The composite action's qrt step with ``inputs`` (its setup-python and install steps are
    GitHub's and PyPI's: the qrt under test is on PATH instead)."""
    action, step = _action_step()
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update(inputs)
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        _bin_dir(tmp_path)

    def expand(value: Any) -> str:
        return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], str(value))

    temp = tmp_path / f"action-{len(list(tmp_path.glob('action-*')))}"
    temp.mkdir()
    output = temp / "output"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "RUNNER_TEMP": str(temp),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_RUN_ID": "11",
        "GITHUB_ACTION": "qrt",
        **{k: expand(v) for k, v in step["env"].items()},
    }
    script = temp / "step.sh"
    script.write_text(step["run"], "utf-8")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=workspace / expand(step["working-directory"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    outputs = dict(
        line.split("=", 1) for line in output.read_text("utf-8").splitlines() if "=" in line
    )
    return done.returncode, outputs


def test_composite_action_runs_qrt_and_reports_exit_code_and_plan_file(tmp_path: Path) -> None:
    action, _ = _action_step()
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"command", "working-directory", "environment"}
    assert set(action["outputs"]) == {"exit-code", "plan-file"}
    for step in action["runs"]["steps"]:
        if "uses" in step:
            assert SHA_PINNED.match(step["uses"]), step["uses"]
    workspace = tmp_path / "workspace"
    init_project(workspace / "quantum")

    code, out = _run_action(tmp_path, workspace, {"working-directory": "quantum"})
    assert (code, out) == (0, {"exit-code": "0", "plan-file": ""})

    command = "plan --detailed-exitcode --format markdown"
    code, out = _run_action(
        tmp_path, workspace, {"working-directory": "quantum", "command": command}
    )
    assert code == 0 and out["exit-code"] == "2"  # changes pending is not a failure
    plan = Path(out["plan-file"]).read_text("utf-8")
    assert plan.startswith("<!-- qrt-plan -->\n### qrt plan") and "1 to create, 3 to run" in plan

    code, out = _run_action(
        tmp_path, workspace, {"working-directory": "quantum", "environment": "staging"}
    )
    assert code == 1 and out["exit-code"] == "1"  # qrt.yaml declares no environment staging
