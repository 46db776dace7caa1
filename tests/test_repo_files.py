"""The repository's own conventions: licence, changelog, one version, pinned linters and actions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import qrt_apply

REPO = Path(__file__).resolve().parent.parent
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def test_license_is_the_apache_2_text_pyproject_declares() -> None:
    text = (REPO / "LICENSE").read_text("utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]


def test_one_version_source() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "qrt_apply.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)?", qrt_apply.__version__)
    changelog = (REPO / "CHANGELOG.md").read_text("utf-8")
    assert re.search(
        rf"^## {re.escape(qrt_apply.__version__)} - \d{{4}}-\d\d-\d\d$", changelog, re.M
    )
    assert "## Unreleased" in changelog


def test_linters_are_pinned_exactly() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"
    ]["dev"]
    pins = {re.split(r"[=<>~!]", d)[0]: d for d in dev}
    assert re.fullmatch(r"ruff==\d+\.\d+\.\d+", pins["ruff"])
    assert re.fullmatch(r"mypy==\d+\.\d+\.\d+", pins["mypy"])


def _uses(workflow: dict[str, object]) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "uses" and isinstance(value, str):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(workflow)
    return found


def test_ci_workflow_runs_ci_run_with_pinned_actions_and_no_default_permissions() -> None:
    path = REPO / ".github" / "workflows" / "ci.yml"
    workflow = yaml.safe_load(path.read_text("utf-8"))
    assert workflow["permissions"] == {}
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "pull_request" in triggers and "push" in triggers
    uses = _uses(workflow)
    assert uses, "the workflow checks out the repository with an action"
    assert all(SHA_PINNED.match(u) for u in uses), uses
    for job in workflow["jobs"].values():
        assert job["permissions"] == {"contents": "read"}
    runs = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if "run" in s]
    assert any(".ci/run" in r for r in runs)
    assert (REPO / ".ci" / "run").is_file()


def test_pre_commit_hook_runs_qrt_validate() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "qrt-validate"]
    assert hook["entry"] == "qrt validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
