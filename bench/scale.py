"""The reconciler at scale (issue 7's figures), run by hand:

    .venv/bin/python bench/scale.py                       # full: 1,000 programs, 10,000 + 5,000 jobs
    .venv/bin/python bench/scale.py --programs 100 --jobs 500 --apply-jobs 500   # a quick look

Figures:

* **S1 converged plan** of PROGRAMS programs + JOBS jobs against ``qrt serve`` on 127.0.0.1: wall
  time from exec to exit of ``qrt plan --detailed-exitcode`` (must exit 0: nothing to do), the HTTP
  requests it sent (counted inside the qrt process by ``bench/apply_probe.py``), how many of them
  were list pages, and the process's peak RSS. Target: < 2 s and requests <= list pages + 10.
* **S2 lockfile load + save** of the lockfile that S1's apply wrote (JOBS jobs, PROGRAMS
  programs): ``Lockfile.load`` then ``render`` + write to a fresh path, best of 5, and whether the
  re-saved file is byte-identical. Target < 0.3 s, identical.
* **S3 lockfile share of an apply**: ``qrt apply`` of APPLY_JOBS Bell jobs on the embedded
  runtime; seconds inside the lockfile's steps (journal append + periodic saves), journal fsyncs,
  load and the final save, against the wall time. Target < 5 %. Reported twice: wall seconds
  inside those calls (an upper bound: it includes waiting for the GIL and the guard while the
  apply's other threads run) and the CPU seconds of the threads in them.
* The set-up apply of S1 (against ``qrt serve``) is reported as info with its own lockfile share.

Everything runs in temp dirs, with HOME a temp dir, only on 127.0.0.1; the server is stopped at
the end whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine import Server, bell_project, client_env, progress

from qrt_apply.lockfile import Lockfile

PROBE = Path(__file__).resolve().parent / "apply_probe.py"


def program_sources(root: Path, programs: int) -> None:
    """``programs`` tiny uploaded programs, one manifest file holding all their documents."""
    (root / "programs").mkdir(exist_ok=True)
    docs = []
    for i in range(programs):
        (root / "programs" / f"p{i:04d}.py").write_text(
            f"def main(backend, user_messenger, **kwargs):\n    return {i}\n"
        )
        docs.append(
            "apiVersion: qrt/v1\nkind: Program\n"
            f"name: p{i:04d}\nsource: ../programs/p{i:04d}.py\nmax_execution_time: 60\n"
        )
    (root / "manifests" / "programs.yaml").write_text("---\n".join(docs))


def probed(
    project: Path, env: dict[str, str], *args: str, timeout: float = 3600
) -> tuple[float, int, dict[str, Any]]:
    """``qrt ARGS`` in a child under the probe: (wall seconds, exit code, what the probe saw)."""
    out = project / f"probe-{time.monotonic_ns()}.json"
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(PROBE), "-C", str(project), *args],
        env={**env, "QRT_BENCH_PROBE_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - began
    if done.returncode not in (0, 2):
        raise RuntimeError(f"qrt {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr}")
    return wall, done.returncode, json.loads(out.read_text())


def lockfile_share(seen: dict[str, Any], wall: float) -> dict[str, float]:
    work = seen["lockfile_s"]
    return {
        "wall_s": round(wall, 2),
        "lockfile_s": round(work, 3),
        "share_pct": round(100 * work / wall, 2),
        "lockfile_cpu_s": round(seen["lockfile_cpu_s"], 3),
        "cpu_share_pct": round(100 * seen["lockfile_cpu_s"] / wall, 2),
        "steps": seen["steps"],
        "saves": seen["saves"],
        "peak_rss_mib": round(seen["peak_rss_kib"] / 1024, 1),
    }


def s2_lockfile(path: Path) -> dict[str, Any]:
    """``Lockfile.load`` then ``save`` of a copy of ``path`` (the copy removed between the two, so
    the save writes), best of 5, in this process; peak traced memory of one round."""
    import shutil
    import tracemalloc

    original = path.read_bytes()
    work = path.with_name("resaved.lock")
    times, cpu_times = [], []
    for _ in range(6):
        shutil.copyfile(path, work)
        tracing = len(times) == 5
        if tracing:
            tracemalloc.start()
        began, cpu = time.perf_counter(), time.process_time()
        lock = Lockfile.load(work)
        work.unlink()
        lock.save()
        spent = time.perf_counter() - began
        cpu_times.append(time.process_time() - cpu)
        if tracing:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        else:
            times.append(spent)
    data = json.loads(original)
    return {
        "jobs": len(data["jobs"]),
        "programs": len(data["programs"]),
        "bytes": len(original),
        "best_s": round(min(times), 3),
        "median_s": round(sorted(times)[2], 3),
        "best_cpu_s": round(min(cpu_times[:5]), 3),
        "identical": work.read_bytes() == original,
        "peak_traced_mib": round(peak / 2**20, 1),
    }


def converged_plans(project: Path, env: dict[str, str], runs: int) -> dict[str, Any]:
    plans = []
    for _ in range(runs):
        wall, code, seen = probed(project, env, "plan", "--detailed-exitcode")
        if code != 0:
            raise RuntimeError("the converged plan is not empty")
        plans.append((wall, seen))
    wall, seen = sorted(plans, key=lambda p: p[0])[runs // 2]  # the median
    return {
        "wall_s": round(wall, 3),
        "walls_s": [round(p[0], 3) for p in plans],
        "requests": seen["requests"],
        "list_pages": seen["list_pages"],
        "by_path": seen["by_path"],
        "peak_rss_mib": round(seen["peak_rss_kib"] / 1024, 1),
    }


def reuse(root: Path, workers: int, runs: int) -> dict[str, Any]:
    """S1 and S2 again on a directory a ``--keep`` run left: its server data and project."""
    env = client_env(root / "home")
    accounts = json.loads((root / "home" / ".qiskit" / "qiskit-ibm.json").read_text())
    server = Server(root / "serve", workers, env)
    try:
        progress("S1: restarting qrt serve on the kept data")
        url = json.loads((root / "big" / "qrt.lock").read_text())["target"]["url"]
        port = int(url.rsplit(":", 1)[1].split("/")[0])  # the lockfile's target, port included
        server.start(token=accounts[server.account]["token"], port=port)
        figures = {"S1_converged_plan": converged_plans(root / "big", env, runs)}
        progress(f"   {figures['S1_converged_plan']}")
    finally:
        server.stop()
    figures["S2_lockfile"] = s2_lockfile(root / "big" / "qrt.lock")
    progress(f"   {figures['S2_lockfile']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--apply-jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plans", type=int, default=5, help="converged plans timed (median)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    parser.add_argument("--reuse", type=Path, help="only S1 and S2, on a --keep directory")
    parser.add_argument("--apply-only", action="store_true", help="only S3")
    args = parser.parse_args()
    if args.apply_only:
        with tempfile.TemporaryDirectory(prefix="qrt-scale-") as tmp_name:
            tmp = Path(tmp_name)
            small = bell_project(tmp / "apply", args.apply_jobs)
            wall, _, seen = probed(small, client_env(tmp / "home"), "apply", "--auto-approve")
        print(json.dumps({"S3_apply_embedded": lockfile_share(seen, wall)}, indent=2))
        return
    if args.reuse:
        figures: dict[str, Any] = reuse(args.reuse, args.workers, args.plans)
        print(json.dumps(figures, indent=2))
        return
    figures = {
        "programs": args.programs,
        "jobs": args.jobs,
        "apply_jobs": args.apply_jobs,
        "nproc": os.cpu_count(),
    }
    kept = contextlib.nullcontext(str(args.keep)) if args.keep else None
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=False)
    with kept or tempfile.TemporaryDirectory(prefix="qrt-scale-") as tmp_name:
        tmp = Path(tmp_name)
        env = client_env(tmp / "home")
        server = Server(tmp / "serve", args.workers, env)
        try:
            progress("S1: starting qrt serve")
            server.start()
            project = bell_project(tmp / "big", args.jobs)
            program_sources(project, args.programs)
            (project / "qrt.yaml").write_text(
                f"manifests: manifests\nlockfile: qrt.lock\ntarget: {{account: {server.account}}}\n"
            )
            progress(f"S1: set-up apply of {args.programs} programs + {args.jobs} jobs")
            wall, _, seen = probed(project, env, "apply", "--auto-approve")
            figures["setup_apply_serve"] = {
                **lockfile_share(seen, wall),
                "requests": seen["requests"],
            }
            progress(f"   {figures['setup_apply_serve']}")
            figures["S1_converged_plan"] = converged_plans(project, env, args.plans)
            progress(f"   {figures['S1_converged_plan']}")
            progress("S2: lockfile load + save")
            figures["S2_lockfile"] = s2_lockfile(project / "qrt.lock")
            progress(f"   {figures['S2_lockfile']}")
        finally:
            server.stop()
        progress(f"S3: embedded apply of {args.apply_jobs} jobs")
        small = bell_project(tmp / "apply", args.apply_jobs)
        wall, _, seen = probed(small, env, "apply", "--auto-approve")
        figures["S3_apply_embedded"] = lockfile_share(seen, wall)
        progress(f"   {figures['S3_apply_embedded']}")
    figures["bench_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
