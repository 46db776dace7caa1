"""Each job submission happens once: a deterministic submission tag, journaled before the POST,
looked up before every POST, reused by every retry, and deduplicated by the runtime service; and
``qrt import`` refuses a runtime job or program that is not the manifests' one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from qrt_apply.apply import Applier
from qrt_apply.lockfile import JOURNAL_NAME, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.model import submission_tag
from qrt_apply.plan import make_plan, observe
from qrt_apply.render.console import NullConsole
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, JobInfo
from qrt_apply.runtime.embedded import EmbeddedRuntime

from fakes import FakeRuntime
from projects import qrt, small_project, write

TARGET = {"channel": "fake", "url": "memory", "instance": None}


def submit_tags(job: JobInfo) -> list[str]:
    return [t for t in job.tags if t.startswith(SUBMIT_TAG_PREFIX)]


def duplicates(jobs: list[JobInfo]) -> dict[str, int]:
    counts = Counter(tag for job in jobs for tag in submit_tags(job))
    return {tag: n for tag, n in counts.items() if n > 1}


# -- (c) the tag ---------------------------------------------------------------------------------


def test_the_tag_is_a_function_of_target_address_digest_and_run() -> None:
    base = submission_tag(TARGET, "job.b/one", "d" * 64, 0)
    assert base == submission_tag(dict(TARGET), "job.b/one", "d" * 64, 0)
    assert base.startswith(SUBMIT_TAG_PREFIX) and len(base) == len(SUBMIT_TAG_PREFIX) + 64
    others = {
        submission_tag({**TARGET, "url": "http://elsewhere"}, "job.b/one", "d" * 64, 0),
        submission_tag(TARGET, "job.b/two", "d" * 64, 0),
        submission_tag(TARGET, "job.b/one", "e" * 64, 0),
        submission_tag(TARGET, "job.b/one", "d" * 64, 1),
    }
    assert base not in others and len(others) == 4


# -- (a) killed while a POST is in flight --------------------------------------------------------


class DyingRuntime(FakeRuntime):
    """A runtime without idempotency of its own whose ``run`` creates the job and then "kills"
    qrt (KeyboardInterrupt) from the ``die_at``-th submission on: the answer never arrives."""

    def __init__(self, die_at: int) -> None:
        super().__init__()
        self.die_at = die_at
        self.submissions = 0
        self.sent_tags: list[str] = []
        self._count = threading.Lock()

    def run(self, program_id: str, inputs: Mapping[str, Any], **kwargs: Any) -> JobInfo:
        self.sent_tags.extend(t for t in kwargs.get("tags", ()) if t.startswith(SUBMIT_TAG_PREFIX))
        info = super().run(program_id, inputs, **kwargs)
        with self._count:
            self.submissions += 1
            dies = self.die_at and self.submissions >= self.die_at
        if dies:
            raise KeyboardInterrupt
        return info


def _apply(root: Path, runtime: FakeRuntime, *, refresh: bool, parallelism: int = 4) -> None:
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock", journal=root / ".qrt" / JOURNAL_NAME)
    try:
        snapshot = lock.snapshot()
        observed = observe(runtime, snapshot, names=desired.programs) if refresh else None
        plan = make_plan(desired, snapshot, observed)
        Applier(
            runtime, lock, desired, NullConsole(), parallelism=parallelism, sleep=lambda _: None
        ).apply(plan)
    finally:
        lock.close()


@pytest.mark.parametrize("refresh", [True, False], ids=["plan-refreshed", "no-refresh"])
@pytest.mark.parametrize("die_at", [1, 2, 4])
def test_an_apply_killed_mid_post_then_applied_again_submits_nothing_twice(
    tmp_path: Path, die_at: int, refresh: bool
) -> None:
    root = small_project(tmp_path)
    (root / ".qrt").mkdir()
    runtime = DyingRuntime(die_at=die_at)
    with pytest.raises(KeyboardInterrupt):
        _apply(root, runtime, refresh=True)
    assert runtime.jobs_by_id, "the runtime accepted jobs whose answers were lost"
    # The lockfile as the next process finds it (journal replayed): those jobs are SUBMITTING.
    lock = Lockfile.load(root / "qrt.lock", journal=root / ".qrt" / JOURNAL_NAME)
    journaled = {
        address: rec["submission_tag"]
        for address, rec in lock.snapshot()["jobs"].items()
        if rec.get("status") == "SUBMITTING"
    }
    lock.close()
    assert journaled
    first_sent = list(runtime.sent_tags)
    assert set(first_sent) <= set(journaled.values()) | {
        rec["submission_tag"]
        for rec in json.loads((root / "qrt.lock").read_text())["jobs"].values()
    }

    runtime.die_at = 0
    _apply(root, runtime, refresh=refresh)

    jobs = list(runtime.jobs_by_id.values())
    assert duplicates(jobs) == {}
    recorded = json.loads((root / "qrt.lock").read_text())["jobs"]
    assert {job.id for job in jobs} == {rec["id"] for rec in recorded.values()}
    assert {rec["status"] for rec in recorded.values()} == {"COMPLETED"}
    # Every journaled submission kept its tag: the job of that address carries it.
    for address, tag in journaled.items():
        assert tag in runtime.job(recorded[address]["id"]).tags
    # A tag is never sent for a job the runtime already has (the look-up adopted those).
    resent = [t for t in runtime.sent_tags[len(first_sent) :] if t in first_sent]
    assert resent == []


def _known_ids(root: Path) -> set[str]:
    records = json.loads((root / "qrt.lock").read_text())["jobs"].values()
    return {e["id"] for r in records for e in [r, *(r.get("history") or [])] if e.get("id")}


@pytest.mark.parametrize("refresh", [True, False], ids=["plan-refreshed", "no-refresh"])
def test_a_job_made_by_an_interrupted_submission_stays_known_when_the_manifests_change(
    tmp_path: Path, refresh: bool
) -> None:
    root = small_project(tmp_path)
    (root / ".qrt").mkdir()
    runtime = DyingRuntime(die_at=1)
    with pytest.raises(KeyboardInterrupt):
        _apply(root, runtime, refresh=True, parallelism=1)
    lost = set(runtime.jobs_by_id) - _known_ids(root)  # made; their answers never arrived
    assert lost
    manifest = root / "manifests" / "all.yaml"
    manifest.write_text(manifest.read_text().replace("default_shots: 100", "default_shots: 101"))
    runtime.die_at = 0
    _apply(root, runtime, refresh=refresh)
    # The rerun of the changed job put the interrupted submission's job in its history.
    assert lost <= _known_ids(root)
    assert set(runtime.jobs_by_id) == _known_ids(root)
    assert duplicates(list(runtime.jobs_by_id.values())) == {}


def test_a_deliberate_rerun_gets_a_new_tag_and_a_new_job(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    runtime = DyingRuntime(die_at=0)
    _apply(root, runtime, refresh=True)
    before = json.loads((root / "qrt.lock").read_text())["jobs"]["job.bell/plain"]
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock")
    plan = make_plan(
        desired,
        lock.snapshot(),
        observe(runtime, lock.snapshot(), names=desired.programs),
        replace={"job.bell/plain"},
    )
    Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    after = json.loads((root / "qrt.lock").read_text())["jobs"]["job.bell/plain"]
    assert (before["run"], after["run"]) == (0, 1)
    assert after["submission_tag"] != before["submission_tag"]
    assert after["id"] != before["id"]
    assert duplicates(list(runtime.jobs_by_id.values())) == {}


# -- the service: one job per tag, whoever sends it ----------------------------------------------


def test_the_embedded_service_returns_the_job_of_a_tag_instead_of_a_second(tmp_path: Path) -> None:
    tag = submission_tag(TARGET, "job.b/one", "d" * 64, 0)
    params = {"pubs": [{"circuit": "OPENQASM 2.0; qreg q[1]; creg c[1]; measure q -> c;"}]}
    with EmbeddedRuntime(tmp_path / ".qrt") as runtime:
        start = threading.Barrier(8, timeout=30)
        answers: list[str] = []

        def submit() -> None:
            start.wait()
            answers.append(runtime.run("sampler", params, tags=["mine", tag]).id)

        threads = [threading.Thread(target=submit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == 8 and len(set(answers)) == 1
        assert [j.id for j in runtime.jobs(tags=[tag], limit=None)] == answers[:1]
        # Without a submission tag every run is a new job.
        plain = {runtime.run("sampler", params, tags=["mine"]).id for _ in range(2)}
        assert len(plain) == 2


# -- (b) two checkouts of one commit at once against qrt serve -----------------------------------

BUILTIN_ONLY = """
apiVersion: qrt/v1
kind: JobBatch
name: bell
program: sampler
backend: aer_simulator
options: {default_shots: 50}
jobs:
  - name: shots-${shots}
    matrix: {shots: [10, 20, 30]}
    inputs:
      pubs:
        - circuit: {$file: ../circuits/bell.qasm}
          shots: "${shots}"
"""

BELL = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
    "h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n"
)


def _checkout(root: Path) -> Path:
    write(root, "circuits/bell.qasm", BELL)
    write(root, "manifests/bell.yaml", BUILTIN_ONLY)
    return root


@pytest.mark.slow
def test_two_checkouts_applying_at_once_against_qrt_serve_make_no_duplicates(
    tmp_path: Path,
) -> None:
    from support.serve import running_server

    roots = [_checkout(tmp_path / name) for name in ("runner-a", "runner-b")]
    with running_server(tmp_path / "server") as server:
        for root in roots:
            saved = qrt(
                root,
                *("account", "save", "--name", "local", "--channel", "ibm_quantum"),
                *("--url", server.api_url, "--token", "-"),
                stdin=server.token + "\n",
            )
            assert saved.returncode == 0, saved.stdout + saved.stderr
        children = []
        for root in roots:
            env = {**os.environ, "HOME": str(root / "home")}
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "qrt_apply", "-C", str(root)]
                    + ["--account", "local", "apply", "--auto-approve"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for child in children:
            out, err = child.communicate(timeout=300)
            assert child.returncode == 0, out + err
        with server.client() as http:
            listed = http.get("/jobs", params={"limit": 100}).json()
        tags = Counter(t for job in listed["jobs"] for t in job.get("tags") or [] if "submit" in t)
        assert len(tags) == 3 and set(tags.values()) == {1}, tags
        ids = [
            {a: r["id"] for a, r in json.loads((root / "qrt.lock").read_text())["jobs"].items()}
            for root in roots
        ]
        assert ids[0] == ids[1] and len(set(ids[0].values())) == 3
        assert {job["id"] for job in listed["jobs"]} == set(ids[0].values())


# -- (d) import checks ---------------------------------------------------------------------------


def _imported(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return qrt(root, "import", *args)


@pytest.mark.slow
def test_import_refuses_another_job_and_accepts_the_right_one(tmp_path: Path) -> None:
    root = small_project(tmp_path / "repo")
    done = qrt(root, "apply", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    lock_path = root / "qrt.lock"
    recorded = json.loads(lock_path.read_text())["jobs"]
    right = recorded["job.bell/shots-10"]["id"]
    other_inputs = recorded["job.bell/shots-20"]["id"]
    other_program = recorded["job.echoes/one"]["id"]
    # Forget the address so import has something to adopt (apply --prune would do the same).
    text = json.loads(lock_path.read_text())
    del text["jobs"]["job.bell/shots-10"]
    lock_path.write_text(json.dumps(text, indent=2) + "\n")
    before = lock_path.read_bytes()

    for wrong, what in ((other_inputs, "inputs"), (other_program, "program")):
        refused = _imported(root, "job.bell/shots-10", wrong)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "refusing to import" in refused.stderr and what in refused.stderr
        assert lock_path.read_bytes() == before

    accepted = _imported(root, "job.bell/shots-10", right)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert json.loads(lock_path.read_text())["jobs"]["job.bell/shots-10"]["id"] == right
    plan = qrt(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


@pytest.mark.slow
def test_import_refuses_a_job_on_another_backend_and_a_program_of_another_name(
    tmp_path: Path,
) -> None:
    root = small_project(tmp_path / "repo")
    done = qrt(root, "apply", "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    lock_path = root / "qrt.lock"
    recorded = json.loads(lock_path.read_text())
    job_id = recorded["jobs"]["job.bell/plain"]["id"]
    program_id = recorded["programs"]["program.echo"]["id"]
    # The same job under a manifest that now wants another backend: a different job.
    manifest = root / "manifests" / "all.yaml"
    manifest.write_text(
        manifest.read_text().replace("backend: aer_simulator", "backend: fake_noisy_5q")
    )
    del recorded["jobs"]["job.bell/plain"]
    del recorded["programs"]["program.echo"]
    lock_path.write_text(json.dumps(recorded, indent=2) + "\n")
    before = lock_path.read_bytes()
    refused = _imported(root, "job.bell/plain", job_id)
    assert refused.returncode == 1 and "backend" in refused.stderr, refused.stderr
    # A program of another name (renamed in the manifests) is not the manifests' program.
    manifest.write_text(
        manifest.read_text()
        .replace("name: echo", "name: echo2")
        .replace("program: echo", "program: echo2")
    )
    refused = _imported(root, "program.echo2", program_id)
    assert refused.returncode == 1 and "named 'echo'" in refused.stderr, refused.stderr
    assert lock_path.read_bytes() == before


# -- Idempotency-Key and submission tags over HTTP -----------------------------------------------


@pytest.mark.slow
def test_a_key_or_tag_sent_again_with_another_body_is_refused_with_409(tmp_path: Path) -> None:
    """As with Stripe's idempotency keys (and the IETF Idempotency-Key draft): the same key with
    the same body answers the first job again; with another body it is refused before any tag
    look-up could answer the first job, and no job is made. A submission tag is held to the same
    rule when no key comes with it."""
    from support.serve import running_server

    tag = submission_tag(TARGET, "job.b/one", "d" * 64, 0)
    pubs = [{"circuit": BELL, "shots": 5}]

    def body(shots: int, tags: list[str]) -> str:
        params = {"pubs": [{**pubs[0], "shots": shots}]}
        return json.dumps({"program_id": "sampler", "params": params, "tags": tags})

    key = {"Idempotency-Key": tag[len(SUBMIT_TAG_PREFIX) :]}
    with running_server(tmp_path / "server") as server, server.client() as http:
        first = http.post("/jobs", content=body(5, [tag]), headers=key)
        assert first.status_code == 201, first.text
        job_id = first.json()["id"]
        again = http.post("/jobs", content=body(5, [tag]), headers=key)
        assert (again.status_code, again.json()["id"]) == (200, job_id)
        other = http.post("/jobs", content=body(6, [tag]), headers=key)
        assert other.status_code == 409, other.text
        assert "different request" in other.json()["error"]["message"]
        # Without the key, the tag alone: the same inputs get the job, other inputs a 409.
        by_tag = http.post("/jobs", content=body(5, [tag, "extra"]))
        assert by_tag.status_code == 201 and by_tag.json()["id"] == job_id
        wrong = http.post("/jobs", content=body(7, [tag]))
        assert wrong.status_code == 409, wrong.text
        assert job_id in wrong.json()["error"]["message"]
        # Another key carrying the same tag with other inputs: the tag still names one job.
        renamed = http.post("/jobs", content=body(8, [tag]), headers={"Idempotency-Key": "k2"})
        assert renamed.status_code == 409, renamed.text
        listed = http.get("/jobs", params={"limit": 100}).json()
        assert [job["id"] for job in listed["jobs"]] == [job_id]
