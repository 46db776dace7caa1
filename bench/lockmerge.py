"""Merging lockfiles and the pull-request plan at size, run by hand:

    .venv/bin/python bench/lockmerge.py                 # 10,000 jobs
    .venv/bin/python bench/lockmerge.py --jobs 1000     # a quick look

Figures:

* **M1 merge**: ``qrt merge-lockfile``'s work (``merge_lockfiles``) on a JOBS-job lockfile where
  one branch adds an entry and changes another and the other adds an entry next to the first and
  removes a third: wall time, best of 3, and whether the result is the canonical text of the
  expected data. Both sides agree on nearly every entry, whose text as read is reused.
* **M2 markdown plan**: characters and longest line of the markdown plan of a JOBS-job batch
  rename with ``--prune`` (JOBS to run, JOBS to forget). Target < 60,000 characters.

Everything runs in a temp dir; nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from qrt_apply.lockfile import Lockfile
from qrt_apply.lockmerge import merge_lockfiles
from qrt_apply.plan import Action, Plan
from qrt_apply.render.plan_view import render_plan


def record(i: int) -> dict[str, Any]:
    digest = f"{i:064x}"
    return {
        "id": f"job-{i}",
        "batch": "sweep",
        "status": "COMPLETED",
        "digest": digest,
        "inputs_digest_parts": {k: digest for k in ("backend", "files", "inputs", "options")},
        "result": {"counts": {"00": i % 97, "11": 100 - i % 97}},
        "history": [],
    }


def merge_figure(jobs: int, work: Path) -> tuple[float, bool]:
    base = {
        "version": 1,
        "target": {"channel": "embedded", "url": ".qrt", "instance": None},
        "programs": {},
        "jobs": {f"job.sweep/j{i:05d}": record(i) for i in range(jobs)},
    }
    ours = copy.deepcopy(base)
    ours["jobs"]["job.sweep/j00001a"] = record(jobs + 1)
    ours["jobs"]["job.sweep/j00005"]["status"] = "FAILED"
    theirs = copy.deepcopy(base)
    theirs["jobs"]["job.sweep/j00001b"] = record(jobs + 2)
    del theirs["jobs"]["job.sweep/j00009"]
    expected = copy.deepcopy(ours)
    expected["jobs"]["job.sweep/j00001b"] = record(jobs + 2)
    del expected["jobs"]["job.sweep/j00009"]
    canonical = json.dumps(expected, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    best, same = float("inf"), True
    for _ in range(3):
        for name, data in (("base", base), ("ours", ours), ("theirs", theirs)):
            Lockfile(work / name, data).save()
        began = time.perf_counter()
        result = merge_lockfiles(work / "base", work / "ours", work / "theirs")
        best = min(best, time.perf_counter() - began)
        same = same and result.clean and (work / "ours").read_text("utf-8") == canonical
    return best, same


def markdown_figure(jobs: int) -> tuple[int, int]:
    name = "measure-the-bell-state-with-this-many-shots"
    actions = [Action("run", f"job.sweep-v2/{name}-{i}", "new job") for i in range(jobs)]
    actions += [
        Action("forget", f"job.sweep/{name}-{i}", "removed from the manifests (--prune)")
        for i in range(jobs)
    ]
    text = render_plan(Plan(actions=tuple(actions)), "markdown")
    return len(text), max(len(line) for line in text.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, same = merge_figure(args.jobs, Path(tmp))
    print(f"M1 merge of {args.jobs:,} jobs: {seconds:.2f} s, canonical text: {same}")
    size, longest = markdown_figure(args.jobs)
    print(
        f"M2 markdown plan of a {args.jobs:,}-job rename (--prune): {size:,} characters "
        f"(target < 60,000), longest line {longest}"
    )


if __name__ == "__main__":
    main()
