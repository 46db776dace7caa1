"""Job definitions kept in qrt.lock, and plans that show old → new for a rerun job."""

from __future__ import annotations

import json
from pathlib import Path

from qrt_apply.apply import Applier
from qrt_apply.lockfile import RESULTS_DIR, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.plan import make_plan, observe
from qrt_apply.plan.diff import job_digest_parts
from qrt_apply.plan.jobdiff import INLINE_INPUTS_LIMIT, definition_changes, flatten
from qrt_apply.render.console import NullConsole
from qrt_apply.render.plan_view import render_plan

from fakes import FakeRuntime
from projects import small_project


def plan_for(root: Path, runtime: FakeRuntime):
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock")
    snapshot = lock.snapshot()
    plan = make_plan(desired, snapshot, observe(runtime, snapshot, names=desired.programs))
    return desired, lock, plan


def converge(root: Path, runtime: FakeRuntime):
    desired, lock, plan = plan_for(root, runtime)
    Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    return plan


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def changes_of(plan, address: str) -> dict[str, tuple]:
    (action,) = [a for a in plan.actions if a.address == address]
    return {c.field: (c.old, c.new) for c in action.changes}


def test_lockfile_keeps_each_jobs_definition_with_files_as_references(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    converge(root, FakeRuntime())
    jobs = json.loads((root / "qrt.lock").read_text())["jobs"]
    definition = jobs["job.bell/shots-10"]["definition"]
    assert definition["inputs"] == {
        "pubs[0].circuit.$file": "circuits/bell.qasm",
        "pubs[0].shots": 10,
    }
    assert set(definition["files"]) == {"circuits/bell.qasm"}
    assert definition["matrix"] == {"shots": 10}
    assert definition["options"] == {"default_shots": 100}
    assert definition["backend"] == "aer_simulator" and "session" not in definition
    echo = jobs["job.echoes/two"]["definition"]
    assert len(echo["program_digest"]) == 64
    assert echo["session"] is True and "matrix" not in echo and "files" not in echo
    assert "inputs_digest_parts" not in jobs["job.echoes/two"]


def test_plan_shows_old_and_new_values_in_every_format(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    edit(
        root, "manifests/all.yaml", "options: {default_shots: 100}", "options: {default_shots: 250}"
    )
    edit(
        root, "manifests/all.yaml", "inputs: {iterations: 2, label: two}", "inputs: {iterations: 3}"
    )
    edit(root, "circuits/bell.qasm", "h q[0];", "h q[1];")
    _, lock, plan = plan_for(root, runtime)
    bell = changes_of(plan, "job.bell/plain")
    old_digest = lock.job("job.bell/plain")["definition"]["files"]["circuits/bell.qasm"]
    assert bell["options.default_shots"] == (100, 250)
    assert bell["$file circuits/bell.qasm"][0] == old_digest
    assert bell["$file circuits/bell.qasm"][1] != old_digest
    assert "inputs.pubs[0].circuit" not in str(bell)  # the file's text is not diffed, its digest is
    two = changes_of(plan, "job.echoes/two")
    assert two == {"inputs.iterations": (2, 3), "inputs.label": ("two", None)}
    (action,) = [a for a in plan.actions if a.address == "job.echoes/two"]
    assert action.reason == "inputs changed"

    text = render_plan(plan, "text")
    assert "~ inputs.iterations: 2 → 3" in text
    assert "~ options.default_shots: 100 → 250" in text
    assert f"~ $file circuits/bell.qasm: {old_digest[:12]} → " in text
    data = json.loads(render_plan(plan, "json"))
    actions = {a["address"]: a for a in data["actions"]}
    assert {"field": "inputs.iterations", "old": 2, "new": 3} in actions["job.echoes/two"][
        "changes"
    ]
    markdown = render_plan(plan, "markdown")
    assert "- inputs.iterations: 2\n+ inputs.iterations: 3" in markdown
    assert "- options.default_shots: 100\n+ options.default_shots: 250" in markdown


def test_backend_and_program_changes_are_fields_too(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    edit(root, "manifests/all.yaml", "backend: aer_simulator", "backend: fake_noisy_5q")
    edit(root, "programs/echo.py", "for i in", "for _i in")
    _, lock, plan = plan_for(root, runtime)
    assert changes_of(plan, "job.bell/plain") == {"backend": ("aer_simulator", "fake_noisy_5q")}
    old = lock.job("job.echoes/one")["definition"]["program_digest"]
    (field, (before, after)) = next(iter(changes_of(plan, "job.echoes/one").items()))
    assert field == "program content" and before == old and after != old


def test_changing_one_matrix_value_touches_only_its_job(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    edit(root, "manifests/all.yaml", "matrix: {shots: [10, 20]}", "matrix: {shots: [10, 30]}")
    _, _, plan = plan_for(root, runtime)
    assert {a.address: a.kind for a in plan.actions} == {"job.bell/shots-30": "run"}
    assert plan.orphans == ("job.bell/shots-20",)
    converge(root, runtime)
    record = Lockfile.load(root / "qrt.lock").job("job.bell/shots-30")
    assert record["definition"]["matrix"] == {"shots": 30}


def test_old_lockfile_without_definitions_still_plans(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    converge(root, runtime)
    data = json.loads((root / "qrt.lock").read_text())
    jobs = {job.address: job for job in load_desired_state(root, root / "manifests").jobs()}
    for address, record in data["jobs"].items():
        del record["definition"]
        # what older versions recorded instead: per-part digests
        record["inputs_digest_parts"] = job_digest_parts(jobs[address])
    (root / "qrt.lock").write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    edit(root, "manifests/all.yaml", "inputs: {iterations: 1}", "inputs: {iterations: 5}")
    _, _, plan = plan_for(root, runtime)
    (action,) = [a for a in plan.actions if a.address == "job.echoes/one"]
    assert action.kind == "rerun" and action.reason == "inputs changed"
    assert action.changes == ()
    data["jobs"]["job.echoes/one"].pop("inputs_digest_parts")
    (root / "qrt.lock").write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    _, _, plan = plan_for(root, runtime)
    (action,) = [a for a in plan.actions if a.address == "job.echoes/one"]
    assert action.reason == "job definition changed"


def test_large_inputs_are_stored_by_digest_and_diffed_by_digest(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()
    big = "x" * (INLINE_INPUTS_LIMIT + 10)
    edit(
        root,
        "manifests/all.yaml",
        "inputs: {iterations: 1}",
        f"inputs: {{iterations: 1, label: {big}}}",
    )
    converge(root, runtime)
    record = Lockfile.load(root / "qrt.lock").job("job.echoes/one")
    ref = record["definition"]["inputs_ref"]
    assert "inputs" not in record["definition"] and ref.startswith(f"{RESULTS_DIR}/")
    stored = json.loads((root / ref).read_text())
    assert stored == {"iterations": 1, "label": big}
    edit(root, "manifests/all.yaml", "inputs: {iterations: 1,", "inputs: {iterations: 2,")
    _, _, plan = plan_for(root, runtime)
    ((field, (old, new)),) = changes_of(plan, "job.echoes/one").items()
    assert field == "inputs" and ref.endswith(f"{old}.json") and new != old


def test_flatten_keeps_paths_shallow() -> None:
    nested = {"pubs": [{"circuit": {"$file": "a.qasm"}, "parameter_values": [0.1, 0.2]}], "e": {}}
    assert flatten(nested) == {
        "pubs[0].circuit.$file": "a.qasm",
        "pubs[0].parameter_values": [0.1, 0.2],
        "e": {},
    }


def test_definition_changes_by_path_and_by_list_place() -> None:
    old = {
        "inputs": flatten({"a": [1, 2, {"b": True}], "v": [0, 1, 2, 3]}),
        "options": {"x": 1},
        "session": False,
    }
    new = {
        "inputs": flatten({"a": [1, 3, {"c": 1}], "v": [0, 1, 5, 3]}),
        "options": {"x": 1.0},
        "session": False,
        "matrix": {"p": 0.2},
    }
    changes = {c.field: (c.old, c.new) for c in definition_changes(old, new)}
    assert changes == {
        "inputs.a[1]": (2, 3),
        "inputs.a[2].b": (True, None),
        "inputs.a[2].c": (None, 1),
        "inputs.v[2]": (2, 5),  # one place of an equal-length list
        "options.x": (1, 1.0),  # 1 and 1.0 are different inputs (and digests)
        "matrix.p": (None, 0.2),
    }
    longer = {"inputs": flatten({"v": [0, 1, 2]})}
    changes = definition_changes(longer, {"inputs": flatten({"v": [0, 1, 2, 3]})})
    assert [(c.field, c.old, c.new) for c in changes] == [("inputs.v", [0, 1, 2], [0, 1, 2, 3])]


def test_a_rerun_program_result_without_counts_records_no_drift(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = FakeRuntime()  # its jobs return {"echo": inputs}: no counts, no expectation values
    converge(root, runtime)
    edit(root, "manifests/all.yaml", "inputs: {iterations: 1}", "inputs: {iterations: 4}")
    converge(root, runtime)
    record = Lockfile.load(root / "qrt.lock").job("job.echoes/one")
    assert record["status"] == "COMPLETED" and len(record["history"]) == 1
    assert "drift" not in record
