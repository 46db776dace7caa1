"""Environments in qrt.yaml (--env / QRT_ENV), --lockfile, and qrt.yaml's schema with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qrt_apply.errors import ConfigError
from qrt_apply.project import load_project

from projects import qrt, small_project, write

ENVIRONMENTS = """
environments:
  dev:
    target: embedded
  prod:
    target: embedded
    lockfile: deploy/prod.lock
"""


def _jobs(lockfile: Path) -> dict[str, str]:
    data = json.loads(lockfile.read_text("utf-8"))
    return {address: job["status"] for address, job in data["jobs"].items()}


def test_promote_a_change_from_dev_to_prod(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    write(root, "qrt.yaml", ENVIRONMENTS)
    dev_lock, prod_lock = root / "envs/dev/qrt.lock", root / "deploy/prod.lock"

    applied = qrt(root, "--env", "dev", "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.startswith("Environment: dev\n")
    assert set(_jobs(dev_lock).values()) == {"COMPLETED"}
    assert json.loads(dev_lock.read_text())["target"]["url"] == ".qrt/env/dev"
    assert not prod_lock.exists() and not (root / "qrt.lock").exists()

    # prod has its own runtime and lockfile: everything is still to do there.
    plan = qrt(root, "plan", "--format", "json", env={"QRT_ENV": "prod"})
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["environment"] == "prod" and data["summary"] == {"create": 1, "run": 5}
    assert qrt(root, "--env", "prod", "apply", "--auto-approve").returncode == 0
    assert _jobs(prod_lock) == _jobs(dev_lock)

    # A change goes to dev first; prod's plan shows it pending until prod is applied.
    batch = root / "manifests/all.yaml"
    batch.write_text(batch.read_text().replace("default_shots: 100", "default_shots: 200"))
    assert qrt(root, "--env", "dev", "apply", "--auto-approve").returncode == 0
    assert qrt(root, "--env", "dev", "plan", "--detailed-exitcode").returncode == 0
    pending = qrt(root, "--env", "prod", "plan", "--detailed-exitcode", "--format", "markdown")
    assert pending.returncode == 2
    assert pending.stdout.startswith("<!-- qrt-plan:prod -->\n")
    assert "`prod`" in pending.stdout.splitlines()[1]
    assert "job.bell/plain" in pending.stdout and "rerun" in pending.stdout
    assert qrt(root, "--env", "prod", "apply", "--auto-approve").returncode == 0
    assert qrt(root, "--env", "prod", "plan", "--detailed-exitcode").returncode == 0
    assert (root / ".qrt/env/dev").is_dir() and (root / ".qrt/env/prod").is_dir()


def test_unknown_or_missing_environment_is_one_clear_error(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    no_envs = qrt(root, "--env", "prod", "plan")
    assert no_envs.returncode == 1
    assert "unknown environment 'prod' (qrt.yaml declares no environments)" in no_envs.stderr
    write(root, "qrt.yaml", ENVIRONMENTS)
    unknown = qrt(root, "--env", "staging", "plan")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "unknown environment 'staging' (known: dev, prod)" in unknown.stderr
    unchosen = qrt(root, "plan")
    assert unchosen.returncode == 1
    assert "declares environments (dev, prod): choose one with --env NAME" in unchosen.stderr
    assert qrt(root, "validate").returncode == 0  # offline checks need no environment
    unlock = qrt(root, "unlock")  # each environment has its own apply lock
    assert unlock.returncode == 1 and "choose one with --env NAME" in unlock.stderr
    assert qrt(root, "--env", "dev", "unlock").returncode == 0
    assert not (root / "qrt.lock").exists() and not (root / "envs").exists()


def test_default_environment_and_empty_qrt_env(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    write(root, "qrt.yaml", ENVIRONMENTS + "default_environment: prod\n")
    assert load_project(root).environment == "prod"
    assert load_project(root, env="dev").lockfile == root.resolve() / "envs/dev/qrt.lock"
    done = qrt(root, "plan", "--lock-only", env={"QRT_ENV": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Environment: prod")


def test_lockfile_option_gets_state_of_its_own(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    other = tmp_path / "elsewhere" / "trial.lock"
    applied = qrt(root, "--lockfile", str(other), "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert set(_jobs(other).values()) == {"COMPLETED"}
    assert not (root / "qrt.lock").exists()
    project = load_project(root, lockfile=other)
    assert project.state_dir.parent == root.resolve() / ".qrt" / "lockfile"
    assert project.results_dir == other.parent / "qrt-results"
    # The project's own lockfile and runtime are untouched: all still to do there.
    assert qrt(root, "plan", "--detailed-exitcode").returncode == 2


def test_project_options_work_after_the_command_too(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    write(root, "qrt.yaml", ENVIRONMENTS)
    applied = qrt(root, "apply", "--auto-approve", "--env", "dev")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.startswith("Environment: dev\n")
    assert set(_jobs(root / "envs/dev/qrt.lock").values()) == {"COMPLETED"}
    # Given on both sides, the later one wins: dev is converged, prod is all still to do.
    assert qrt(root, "--env", "prod", "plan", "--env", "dev", "--detailed-exitcode").returncode == 0
    assert qrt(root, "--env", "dev", "plan", "--env", "prod", "--detailed-exitcode").returncode == 2
    # -C after the command: run from elsewhere (the helper's own -C names an empty directory).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = qrt(elsewhere, "plan", "--detailed-exitcode", "-C", str(root), "--env", "dev")
    assert found.returncode == 0, found.stderr
    other = tmp_path / "trial.lock"
    fresh = qrt(root, "plan", "--env", "dev", "--lockfile", str(other), "--format", "json")
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["summary"] == {"create": 1, "run": 5}
    assert qrt(root, "unlock", "--env", "dev").returncode == 0
    unknown = qrt(root, "plan", "--env", "staging")
    assert unknown.returncode == 1 and "unknown environment 'staging'" in unknown.stderr
    # Commands that work on no project do not take them.
    schema = qrt(root, "schema", "program", "--env", "dev")
    assert schema.returncode == 1 and "No such option '--env'" in schema.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("manifest: x\n", "qrt.yaml:1: unknown key manifest (known: default_environment,"),
        ("limits:\n  max_jobs: 0\n", "qrt.yaml:2: limits.max_jobs must be a positive integer"),
        ("parallelism: many\n", "qrt.yaml:1: parallelism must be a positive integer"),
        (
            "manifests: m\ntarget: {chanel: x}\n",
            "qrt.yaml:2: unknown key target.chanel (known: account, channel, instance, url)",
        ),
        ("environments:\n  Prod: {}\n", "qrt.yaml:2: environments: 'Prod' is not a valid name"),
        (
            "environments:\n  dev:\n    targt: embedded\n",
            "qrt.yaml:3: unknown key environments.dev.targt (known: description, lockfile, target)",
        ),
        (
            "environments: {dev: {}}\ndefault_environment: prod\n",
            "qrt.yaml:2: default_environment 'prod' is not one of the environments (dev)",
        ),
        (
            "lockfile: a.lock\nenvironments: {dev: {}}\n",
            "qrt.yaml:1: with environments, each has its own lockfile",
        ),
        (
            "environments:\n  a: {lockfile: x.lock}\n  b: {lockfile: x.lock}\n",
            "qrt.yaml:3: environments a and b share the lockfile x.lock",
        ),
        ("- a\n- b\n", "qrt.yaml:1: must be a mapping"),
        ("a: 1\n---\nb: 2\n", "qrt.yaml:3: one YAML document only"),
        ("target: [\n", "qrt.yaml:2: invalid YAML"),
        ("# padding\n" * 120_000, "qrt.yaml: larger than 1,048,576 bytes"),
    ],
)
def test_qrt_yaml_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "qrt.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path)
    assert str(caught.value).startswith(message), str(caught.value)


def test_python_api_loads_an_environment(tmp_path: Path) -> None:
    import qrt_apply

    root = small_project(tmp_path)
    write(root, "qrt.yaml", ENVIRONMENTS)
    with qrt_apply.Project.load(root, env="prod") as project:
        assert project.settings.environment == "prod"
        assert project.settings.lockfile == root.resolve() / "deploy/prod.lock"
        plan = project.plan(lock_only=True)
        assert plan.environment == "prod"
    with pytest.raises(ConfigError, match=r"unknown environment 'qa' \(known: dev, prod\)"):
        qrt_apply.Project.load(root, env="qa")
