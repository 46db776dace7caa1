"""Benchmarks, run by hand: `.venv/bin/python bench/run.py [--jobs N] [--sweep N]`.

Reports (wall-clock seconds on this machine):
- startup: `qrt validate` and `qrt plan --lock-only` on a project of SWEEP matrix jobs (the first
  validate parses the circuit; with `.qrt/` present it remembers that, and the second parses
  nothing);
- throughput: `qrt apply` of JOBS Bell sampler jobs on the embedded runtime (child process per job),
  and the no-op `qrt plan` right after.
Nothing here asserts a speed; it prints numbers for the closing notes and for spotting regressions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n'


def project(root: Path, jobs: int) -> Path:
    (root / "manifests").mkdir(parents=True)
    (root / "circuits").mkdir()
    (root / "circuits/bell.qasm").write_text(BELL)
    (root / "manifests/bench.yaml").write_text(
        "apiVersion: qrt/v1\nkind: JobBatch\nname: bench\nprogram: sampler\nbackend: aer_simulator\n"
        "options: {default_shots: 1000}\n"
        "jobs:\n"
        "  - name: bell-${seed}\n"
        f"    matrix: {{seed: {list(range(jobs))}}}\n"
        '    options: {seed_simulator: "${seed}"}\n'
        "    inputs: {pubs: [{circuit: {$file: ../circuits/bell.qasm}}]}\n"
    )
    return root


def timed(root: Path, *args: str) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qrt_apply", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 2):
        sys.exit(f"qrt {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--sweep", type=int, default=1000)
    args = parser.parse_args()
    report: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big = project(Path(tmp) / "big", args.sweep)
        report[f"validate_{args.sweep}_jobs_s"], _ = timed(big, "validate")
        (big / ".qrt").mkdir()
        timed(big, "validate")  # remembers the checked jobs in .qrt/checked.json
        report[f"validate_{args.sweep}_checked_jobs_s"], _ = timed(big, "validate")
        report[f"plan_lock_only_{args.sweep}_jobs_s"], _ = timed(big, "plan", "--lock-only")
        small = project(Path(tmp) / "small", args.jobs)
        report[f"apply_{args.jobs}_sampler_jobs_s"], _ = timed(small, "apply", "--auto-approve")
        report["noop_plan_after_apply_s"], code = timed(small, "plan", "--detailed-exitcode")
        assert code == 0, "the plan after apply should be empty"
    for key, value in report.items():
        print(f"{key:>36}: {value:7.2f}")
    print(json.dumps({k: round(v, 3) for k, v in report.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
