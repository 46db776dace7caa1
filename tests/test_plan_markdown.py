"""The markdown plan as a pull-request comment: under 60,000 characters and short lines whatever the
plan's size, a hidden marker to update it by, the target and environment named."""

from __future__ import annotations

from pathlib import Path

from qrt_apply.apply import Applier
from qrt_apply.lockfile import JOURNAL_NAME, Lockfile
from qrt_apply.manifests import load_desired_state
from qrt_apply.plan import Action, Change, Plan, make_plan, observe
from qrt_apply.render.console import NullConsole
from qrt_apply.render.plan_markdown import MAX_CHARS, ROWS_PER_BATCH
from qrt_apply.render.plan_view import render_plan

from fakes import FakeRuntime
from projects import BELL, write

LONGEST_LINE = 300


def batch_manifest(name: str, jobs: int) -> str:
    return (
        f"apiVersion: qrt/v1\nkind: JobBatch\nname: {name}\nprogram: sampler\n"
        "backend: aer_simulator\njobs:\n"
        "  - name: measure-the-bell-state-with-this-many-shots-${shots}\n"
        f"    matrix: {{shots: [{', '.join(str(n + 1) for n in range(jobs))}]}}\n"
        "    inputs:\n      pubs:\n        - circuit: {$file: ../circuits/bell.qasm}\n"
        '          shots: "${shots}"\n'
    )


def plan_of(root: Path, runtime: FakeRuntime, **kwargs) -> Plan:
    desired = load_desired_state(root, root / "manifests")
    lock = Lockfile.load(root / "qrt.lock")
    return make_plan(
        desired,
        lock.snapshot(),
        observe(runtime, lock.snapshot(), names=desired.programs),
        target=runtime.target.to_json(),
        **kwargs,
    )


def renamed_500(root: Path) -> FakeRuntime:
    """A 500-job batch applied under one name, then renamed in its manifest."""
    write(root, "circuits/bell.qasm", BELL)
    write(root, "manifests/sweep.yaml", batch_manifest("a-rather-long-batch-name-sweep", 500))
    runtime = FakeRuntime()
    desired = load_desired_state(root, root / "manifests")
    # journaled as the commands do: without a journal every step rewrites the whole lockfile
    lock = Lockfile.load(root / "qrt.lock", journal=root / ".qrt" / JOURNAL_NAME)
    plan = make_plan(desired, lock.snapshot(), observe(runtime, lock.snapshot()))
    Applier(runtime, lock, desired, NullConsole(), sleep=lambda _: None).apply(plan)
    lock.close()
    write(root, "manifests/sweep.yaml", batch_manifest("a-rather-long-batch-name-sweep-v2", 500))
    return runtime


def check_size(text: str) -> None:
    assert len(text) < MAX_CHARS
    assert max(len(line) for line in text.splitlines()) <= LONGEST_LINE


def test_a_500_job_batch_rename_fits_one_comment(tmp_path: Path) -> None:
    runtime = renamed_500(tmp_path)
    for prune in (False, True):
        plan = plan_of(tmp_path, runtime, prune=prune)
        assert len(plan.actions) == (1000 if prune else 500)
        text = render_plan(plan, "markdown")
        check_size(text)
        assert text.startswith("<!-- qrt-plan -->\n")
        summary = "500 to forget, 500 to run" if prune else "500 to run"
        assert f"**Plan: {summary}.**" in text
        # per-batch summary rows, then each batch's jobs folded away with the rest counted
        assert "| `batch.a-rather-long-batch-name-sweep-v2` | 500 | 500 to run |" in text
        assert (
            f"… and {500 - ROWS_PER_BATCH} more in `batch.a-rather-long-batch-name-sweep-v2`"
            in text
        )
        assert text.count("<details>") == text.count("</details>") == (2 if prune else 1)
        if not prune:
            assert "Orphaned (in qrt.lock, gone from the manifests" in text
            assert "- … and 450 more" in text


def test_the_text_plan_of_the_same_rename_lists_every_job(tmp_path: Path) -> None:
    runtime = renamed_500(tmp_path)
    text = render_plan(plan_of(tmp_path, runtime), "text")
    assert text.count("  + job.a-rather-long-batch-name-sweep-v2/") == 500


def test_thousands_of_batches_and_long_reasons_still_fit() -> None:
    actions = [
        Action(
            "update",
            f"program.p{n}",
            "source changed " + "x" * 5000,
            (Change("source", "a" * 64, "b" * 64),),
        )
        for n in range(300)
    ]
    actions += [
        Action("rerun", f"job.batch-{b:04d}/job-{j}", "last run FAILED (" + "e" * 3000 + ")")
        for b in range(2000)
        for j in range(5)
    ]
    plan = Plan(actions=tuple(actions), orphans=tuple(f"job.gone/{n}" for n in range(5000)))
    text = render_plan(plan, "markdown")
    check_size(text)
    assert "more programs" in text or text.count("`program.p") == 300
    assert "more batches" in text
    assert text.count("<details>") == text.count("</details>")
    assert text.count("```") % 2 == 0


def test_marker_target_and_environment_are_named() -> None:
    plan = Plan(
        actions=(Action("run", "job.b/one", "new job"),),
        target={"channel": "ibm_quantum", "url": "https://runtime.example", "instance": "h/g/p"},
    )
    text = render_plan(plan, "markdown", env="prod")
    assert text.splitlines()[:2] == [
        "<!-- qrt-plan:prod -->",
        "### qrt plan for environment `prod`",
    ]
    assert "Target: `ibm_quantum` at `https://runtime.example`, instance `h/g/p`." in text
    plain = render_plan(plan, "markdown")
    assert plain.startswith("<!-- qrt-plan -->\n### qrt plan\n")
    embedded = Plan(actions=(), target={"channel": "embedded", "url": ".qrt", "instance": None})
    none = render_plan(embedded, "markdown", env="dev")
    assert "Target: the embedded runtime (`.qrt`)." in none
    assert "**No changes.**" in none
    # A name that would end the HTML comment early is made harmless in the marker.
    assert render_plan(embedded, "markdown", env="a-->b").startswith("<!-- qrt-plan:a--_b -->")
