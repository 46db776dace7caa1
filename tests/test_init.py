"""qrt init: a new program repository that validates and applies as it stands; qrt schema."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from qrt_apply.scaffold import WORKFLOWS, scaffold_files
from qrt_apply.schema import SCHEMA_FILES, load_schema

from projects import qrt


def test_init_in_an_empty_directory_then_validate_and_apply(tmp_path: Path) -> None:
    root = tmp_path / "programs-repo"
    done = qrt(tmp_path, "init", str(root))
    assert done.returncode == 0, done.stderr
    for path in scaffold_files():
        assert (root / path).is_file(), path
        assert f"created {path}" in done.stdout
    assert qrt(root, "validate").returncode == 0
    applied = qrt(root, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    lock = json.loads((root / "qrt.lock").read_text("utf-8"))
    assert set(lock["programs"]) == {"program.ghz"}
    assert {a: j["status"] for a, j in lock["jobs"].items()} == {
        "job.bell/bell": "COMPLETED",
        "job.ghz/ghz-2": "COMPLETED",
        "job.ghz/ghz-3": "COMPLETED",
    }
    assert lock["jobs"]["job.ghz/ghz-3"]["result"]["ideal"] > 0.9
    again = qrt(root, "plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def test_init_refuses_to_overwrite_and_names_every_file(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "batches.yaml").write_text("mine\n")
    (tmp_path / ".gitignore").write_text("mine\n")
    done = qrt(tmp_path, "init")
    assert done.returncode == 1
    assert "manifests/batches.yaml" in done.stderr and ".gitignore" in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / ".gitignore").read_text() == "mine\n"
    assert not (tmp_path / "qrt.yaml").exists()  # nothing written at all
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "manifests"]


def test_yaml_files_name_the_schema_that_checks_them(tmp_path: Path) -> None:
    files = scaffold_files()
    expected = {
        "qrt.yaml": "schemas/project.schema.json",
        "manifests/programs.yaml": "../schemas/program.schema.json",
        "manifests/batches.yaml": "../schemas/jobbatch.schema.json",
    }
    for path, schema_path in expected.items():
        first = files[path].splitlines()[0]
        assert first == f"# yaml-language-server: $schema={schema_path}"
        shipped = (Path(path).parent / schema_path).as_posix().replace("manifests/../", "")
        assert json.loads(files[shipped]) == load_schema(shipped.split("/")[1].split(".")[0])
    for name in SCHEMA_FILES:
        assert f"schemas/{SCHEMA_FILES[name]}" in files
    assert "qrt.lock merge=qrt" in files[".gitattributes"].splitlines()
    assert ".qrt/" in files[".gitignore"].splitlines()
    for workflow in WORKFLOWS.values():
        assert "@QRT_VERSION@" not in files[workflow]
        yaml.safe_load(files[workflow])


def test_schema_prints_each_schema_and_lists_them(tmp_path: Path) -> None:
    for name in ("program", "jobbatch", "moved", "project"):
        done = qrt(tmp_path, "schema", name)
        assert done.returncode == 0
        assert json.loads(done.stdout) == load_schema(name)
    listing = qrt(tmp_path, "schema")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == [
        "jobbatch",
        "moved",
        "program",
        "project",
    ]
    bad = qrt(tmp_path, "schema", "lockfile")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
