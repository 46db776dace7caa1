"""Engine benchmarks, run by hand: `.venv/bin/python bench/engine.py [--quick] [--only 1,3]`.

Every figure is a ratio or a cost measured within one run, the sides alternated and the medians
reported (the machine is shared and noisy). Figures and targets:

1. `qrt apply --auto-approve` of 200 one-PUB Bell sampler jobs (1,000 shots, circuits/bell.qasm,
   `seed_simulator: "${i}"` from a matrix) on the embedded runtime, vs one Python process running
   the same 200 jobs on qiskit-aer's SamplerV2 one at a time (bench/aer_baseline.py); both timed
   as whole processes, exec to exit. Target <= 1.5x.
2. The same apply against a warm `qrt serve --workers 2` on 127.0.0.1 (`qrt --account NAME
   apply`), vs the same baseline. Target <= 3x.
3. Server-side fixed cost per job: `RuntimeService.run` over `LocalExecutor(workers=1,
   prewarm=True)` on a temp `Store`, submission to final (`wait_idle`) minus the job's own work.
   A built-in Bell job's own work is the same job timed in a warm SamplerV2 loop in this process
   (parse, run, counts); target <= 5 ms. A trivial uploaded program (`return 1`) has none; target
   <= 50 ms, sandbox included. Latency-style: one job at a time, worker and sandbox pool warm.
   Throughput-style: N jobs back to back, total / N.
4. One 20-qubit GHZ sampler job (1,000 shots) through the engine (latency, warm worker; 1 worker,
   so Aer gets all cores' OpenMP threads as here) vs raw SamplerV2 on the same circuit in this
   process. Target <= 1.2x.
5. 100 x 16-qubit GHZ sampler jobs: `LocalExecutor(workers=1)` time / `workers=2` time.
   Target >= 1.8x.
6. Memory of `qrt serve --workers 2` with its warm workers and sandbox pool: VmRSS and PSS
   (smaps_rollup) summed over the server's process tree. No target; reported.

Job seeds differ from job to job everywhere, as in a matrix over seeds. Rows marked `info` say
where the time goes. `--quick` runs fewer repetitions and jobs (under a minute); the full run
takes two to four minutes. Everything runs under temp dirs, on 127.0.0.1 only, with HOME pointed
at a temp dir (figure 2's saved account never touches ~/.qiskit); every process started here is
stopped. The footer says how many cores other processes kept busy meanwhile: read every figure
with it.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from qiskit import qasm2
from qiskit_aer.primitives import SamplerV2

from qrt_apply.engine.executor import LocalExecutor
from qrt_apply.engine.service import RuntimeService
from qrt_apply.engine.store import Store

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
BELL_FILE = ROOT / "circuits" / "bell.qasm"
BELL = BELL_FILE.read_text()
SHOTS = 1000
TRIVIAL = "def main(backend, user_messenger):\n    return 1\n"
USER = "bench"
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def ghz(qubits: int) -> str:
    """An OpenQASM 2 GHZ circuit on ``qubits`` qubits, measured."""
    gates = "".join(f"cx q[{i}], q[{i + 1}];\n" for i in range(qubits - 1))
    return (
        f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{qubits}];\ncreg c[{qubits}];\n'
        f"h q[0];\n{gates}measure q -> c;\n"
    )


@dataclass(frozen=True)
class Settings:
    jobs: int  # figures 1 and 2
    reps: int  # figures 1 and 2: runs of each side
    fixed_jobs: int  # figure 3 throughput
    latency_jobs: int  # figure 3 built-in latency
    program_latency_jobs: int
    program_jobs: int  # figure 3 program throughput
    big_reps: int  # figure 4
    par_jobs: int  # figure 5
    par_reps: int
    probes: bool  # figure 1's instrumented runs


FULL = Settings(200, 5, 100, 30, 10, 10, 7, 100, 3, True)
QUICK = Settings(200, 1, 40, 10, 4, 4, 3, 40, 1, False)


@dataclass
class Row:
    figure: str
    label: str
    value: float
    unit: str  # "x", "ms", "s", "MiB"
    target: str = ""  # "<= 1.5", ">= 1.8", "" (info)
    note: str = ""

    @property
    def met(self) -> str:
        if not self.target:
            return "info"
        op, bound = self.target.split()
        ok = self.value <= float(bound) if op == "<=" else self.value >= float(bound)
        return "yes" if ok else "NO"

    def shown(self) -> str:
        return (
            f"{self.value:.2f}{self.unit}" if self.unit == "x" else f"{self.value:.1f} {self.unit}"
        )


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        target = f"{row.target}{row.unit if row.unit == 'x' else ' ' + row.unit}"
        print(
            f"  [{row.figure}] {row.label}: {row.shown()}"
            + (f" (target {target}: {row.met})" if row.target else "")
            + (f" -- {row.note}" if row.note else ""),
            flush=True,
        )

    def table(self) -> str:
        lines = [f"{'fig':<4} {'figure':<66} {'value':>11} {'target':>10} {'met?':>5}"]
        for row in self.rows:
            target = f"{row.target}{row.unit if row.unit == 'x' else ' ' + row.unit}"
            lines.append(
                f"{row.figure:<4} {row.label:<66} {row.shown():>11} "
                f"{target if row.target else '-':>10} {row.met:>5}"
            )
        return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids, found, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def role(pid: int) -> str:
    command = cmdline(pid)
    if "qrt_apply.engine.worker" in command:
        return "worker"
    if "qrt_apply.engine.sandboxed" in command:
        return "bwrap" if Path(command.split(" ", 1)[0]).name == "bwrap" else "sandbox"
    return "other"


def _waiting_on_pipe(pid: int) -> bool:
    """Blocked reading a pipe: a warm worker waiting for a job, a warm sandbox for its "go"."""
    try:
        if "pipe_read" in Path(f"/proc/{pid}/wchan").read_text():
            return True
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "0"  # read(2), x86-64
    except (OSError, IndexError):
        return False


def wait_warm(root: int, workers: int, sandboxes: int, timeout: float = 180) -> float:
    """Wait until ``root``'s tree holds ``workers`` warm workers and ``sandboxes`` warm sandboxes
    (each blocked on its input pipe, twice in a row); returns the seconds waited."""
    began = time.monotonic()
    steady = 0
    while time.monotonic() - began < timeout:
        pids = descendants(root)
        roles = {pid: role(pid) for pid in pids}
        ours = [pid for pid in pids if roles[pid] in ("worker", "sandbox")]
        counts = [sum(roles[pid] == kind for pid in ours) for kind in ("worker", "sandbox")]
        if counts == [workers, sandboxes] and all(_waiting_on_pipe(pid) for pid in ours):
            steady += 1
            if steady >= 2:
                return time.monotonic() - began
        else:
            steady = 0
        time.sleep(0.05)
    raise RuntimeError(f"workers/sandboxes of pid {root} not warm after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its live descendants."""
    return sum(cpu_seconds(pid) for pid in [root, *descendants(root)])


def memory(root: int) -> dict[str, dict[str, float]]:
    """VmRSS and PSS in MiB of ``root`` and its descendants, summed by role (and in all)."""
    sums: dict[str, dict[str, float]] = {}
    for pid in [root, *descendants(root)]:
        kind = "server" if pid == root else role(pid)
        rss = pss = 0.0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
        for key in (kind, "total"):
            entry = sums.setdefault(key, {"rss": 0.0, "pss": 0.0, "count": 0})
            entry["rss"] += rss
            entry["pss"] += pss
            entry["count"] += 1
    return sums


def kill_leftovers(pids: dict[int, str]) -> None:
    """SIGKILL those of ``pids`` (pid -> command line when seen) that still run the same command."""
    for pid, command in pids.items():
        if command and cmdline(pid) == command:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def qrt_command() -> list[str]:
    script = Path(sys.executable).with_name("qrt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "qrt_apply"]


def client_env(home: Path) -> dict[str, str]:
    """The environment of every qrt process started here: no QISKIT_IBM_* account from outside,
    HOME a temp dir (saved accounts go there), loopback never proxied."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_IBM_")}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def run_checked(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


# -- projects --------------------------------------------------------------------------------


def bell_project(root: Path, jobs: int, seed_per_job: bool = True) -> Path:
    """The example repository's shape: qrt.yaml, circuits/bell.qasm, one JobBatch of ``jobs``
    jobs; job i has seed i (``seed_per_job``) or all have seed 1."""
    (root / "manifests").mkdir(parents=True)
    (root / "circuits").mkdir()
    shutil.copyfile(BELL_FILE, root / "circuits" / "bell.qasm")
    (root / "qrt.yaml").write_text("manifests: manifests\nlockfile: qrt.lock\n")
    (root / "manifests" / "bench.yaml").write_text(
        "apiVersion: qrt/v1\nkind: JobBatch\nname: bench\nprogram: sampler\nbackend: aer_simulator\n"
        f"options: {{default_shots: {SHOTS}{'' if seed_per_job else ', seed_simulator: 1'}}}\n"
        "jobs:\n"
        "  - name: bell-${i}\n"
        f"    matrix: {{i: {list(range(jobs))}}}\n"
        + ('    options: {seed_simulator: "${i}"}\n' if seed_per_job else "")
        + "    inputs:\n"
        "      pubs:\n"
        "        - circuit: {$file: ../circuits/bell.qasm}\n"
    )
    return root


def program_project(root: Path) -> Path:
    """One uploaded program (``return 1``) and one job of it: warms a server's sandbox pool."""
    (root / "manifests").mkdir(parents=True)
    (root / "programs").mkdir()
    (root / "programs" / "trivial.py").write_text(TRIVIAL)
    (root / "qrt.yaml").write_text("manifests: manifests\nlockfile: qrt.lock\n")
    (root / "manifests" / "trivial.yaml").write_text(
        "apiVersion: qrt/v1\nkind: Program\nname: trivial\nsource: ../programs/trivial.py\n"
        "description: Returns 1.\nmax_execution_time: 60\n---\n"
        "apiVersion: qrt/v1\nkind: JobBatch\nname: warm\nprogram: trivial\nbackend: aer_simulator\n"
        "jobs:\n  - name: one\n    inputs: {}\n"
    )
    return root


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class ApplyRun:
    seconds: float
    to_first_submit: float  # exec -> first job created (start-up, plan)
    engine_span: float  # first job created -> last job ended
    tail: float  # last job ended -> exit (polling, collecting, lockfile, shutdown)
    cpu: float  # CPU seconds of the apply and every process it started (its workers)
    server_cpu: float = 0.0  # CPU seconds of the server's tree meanwhile (figure 2)


def timed_apply(project: Path, env: dict[str, str], jobs: int, *global_args: str) -> ApplyRun:
    args = [*qrt_command(), *global_args, "-C", str(project), "apply", "--auto-approve"]
    wall = time.time()
    cpu = children_cpu()
    began = time.perf_counter()
    run_checked(args, env)
    seconds = time.perf_counter() - began
    cpu = children_cpu() - cpu
    first, span, tail = lock_breakdown(project, jobs, wall, seconds)
    return ApplyRun(seconds, first, span, tail, cpu)


def lock_breakdown(project: Path, jobs: int, wall: float, seconds: float) -> tuple[float, ...]:
    """From the job times qrt.lock records: (exec -> first job created, first created -> last
    ended, last ended -> exit) of an apply started at ``wall`` that took ``seconds``."""
    records = json.loads((project / "qrt.lock").read_text())["jobs"].values()
    done = [r for r in records if r.get("status") == "COMPLETED"]
    if len(done) != jobs:
        raise RuntimeError(f"{project}: {len(done)} of {jobs} jobs COMPLETED")
    created = min(_stamp(r["created"]) for r in done)
    ended = max(_stamp(r["ended"]) for r in done)
    return created - wall, ended - created, wall + seconds - ended


def children_cpu() -> float:
    """CPU seconds of this process's finished (waited-for) children and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_baseline(jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the raw-Aer process."""
    args = [sys.executable, str(BENCH / "aer_baseline.py"), str(BELL_FILE), str(jobs), str(SHOTS)]
    cpu = children_cpu()
    began = time.perf_counter()
    run_checked(args, dict(os.environ))
    return time.perf_counter() - began, children_cpu() - cpu


def compare_applies(
    report: Report,
    figure: str,
    label: str,
    target: str,
    settings: Settings,
    fresh_project: Callable[..., Path],
    env: dict[str, str],
    global_args: tuple[str, ...] = (),
    server_cpu: Callable[[], float] | None = None,
) -> float:
    """Alternate baseline and apply ``settings.reps`` times each; report the ratio of medians
    and return the baseline's median. ``server_cpu`` reads the CPU seconds of a server that the
    apply's jobs also run on."""
    base: list[float] = []
    base_cpu: list[float] = []
    runs: list[ApplyRun] = []
    for rep in range(settings.reps):
        seconds, cpu = timed_baseline(settings.jobs)
        base.append(seconds)
        base_cpu.append(cpu)
        before = server_cpu() if server_cpu else 0.0
        runs.append(timed_apply(fresh_project(), env, settings.jobs, *global_args))
        if server_cpu:
            runs[-1].server_cpu = server_cpu() - before
        progress(
            f"  fig {figure} rep {rep + 1}: baseline {base[-1]:.2f} s, apply {runs[-1].seconds:.2f} s"
        )
    applied = median([r.seconds for r in runs])
    mid = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    report.add(
        Row(
            figure,
            label,
            applied / median(base),
            "x",
            target,
            f"apply {applied:.2f} s vs raw Aer {median(base):.2f} s (medians of {settings.reps})",
        )
    )
    report.add(
        Row(
            f"{figure}i",
            "  median apply: exec -> first job submitted (start-up, plan)",
            mid.to_first_submit,
            "s",
        )
    )
    report.add(
        Row(
            f"{figure}i",
            "  median apply: first job created -> last job ended",
            mid.engine_span,
            "s",
        )
    )
    report.add(
        Row(
            f"{figure}i",
            "  median apply: last job ended -> exit (poll, collect, lockfile)",
            mid.tail,
            "s",
        )
    )
    cpu = median([r.cpu + r.server_cpu for r in runs])
    split = (
        f" (client {median([r.cpu for r in runs]):.2f} s, server tree "
        f"{median([r.server_cpu for r in runs]):.2f} s)"
        if server_cpu
        else " (apply process and its workers)"
    )
    report.add(
        Row(
            f"{figure}i",
            "  CPU seconds, everything the apply used / raw Aer",
            cpu / median(base_cpu),
            "x",
            note=f"{cpu:.2f} s{split} vs {median(base_cpu):.2f} s; less noisy than wall time",
        )
    )
    return median(base)


# -- figures 1 and 2 -------------------------------------------------------------------------


def figure_1(report: Report, settings: Settings, tmp: Path) -> None:
    progress("figure 1: qrt apply on the embedded runtime vs raw Aer")
    env = client_env(tmp / "home")
    counter = iter(range(1_000_000))

    def fresh(seed_per_job: bool = True) -> Path:
        return bell_project(tmp / f"fig1-{next(counter)}", settings.jobs, seed_per_job)

    base = compare_applies(
        report,
        "1",
        f"apply {settings.jobs} Bell jobs, embedded / raw Aer",
        "<= 1.5",
        settings,
        fresh,
        env,
    )
    if settings.probes:
        probe_applies(report, "1", settings, base, fresh, env)


def probe_applies(
    report: Report,
    figure: str,
    settings: Settings,
    base: float,
    fresh_project: Callable[..., Path],
    env: dict[str, str],
    global_args: tuple[str, ...] = (),
) -> None:
    """Where an apply's time goes (bench/apply_probe.py): an instrumented apply, then what-ifs
    that take away one cost after the other -- qrt.lock rewritten after every step, the pass
    manager rebuilt for every seed, the applier's poll backoff (0.25 s growing to 2 s) -- each
    run twice; their median over ``base``, the figure's median baseline."""
    variants = [
        ("instrumented apply: seconds inside Lockfile.save", {}, True),
        ("what-if: qrt.lock written once, at the end", {"QRT_BENCH_DEFER_SAVES": "1"}, True),
        ("what-if: that, and one seed for all jobs", {"QRT_BENCH_DEFER_SAVES": "1"}, False),
        (
            "what-if: that, and polling every 50 ms",
            {"QRT_BENCH_DEFER_SAVES": "1", "QRT_BENCH_POLL_MAX": "0.05"},
            False,
        ),
    ]
    if figure != "1":  # the same client code: the rest shows in figure 1
        variants = variants[:2]
    for index, (label, overrides, seed_per_job) in enumerate(variants):
        runs: list[tuple[float, dict[str, Any], tuple[float, ...]]] = []
        for attempt in range(1 if index == 0 else 2):
            project = fresh_project(seed_per_job)
            out = project.parent / f"probe-{figure}-{index}-{attempt}.json"
            probe_env = dict(env, QRT_BENCH_PROBE_OUT=str(out), **overrides)
            args = [sys.executable, str(BENCH / "apply_probe.py"), *global_args]
            wall = time.time()
            began = time.perf_counter()
            run_checked([*args, "-C", str(project), "apply", "--auto-approve"], probe_env)
            seconds = time.perf_counter() - began
            phases = lock_breakdown(project, settings.jobs, wall, seconds)
            runs.append((seconds, json.loads(out.read_text()), phases))
        seconds, seen, (first, span, tail) = sorted(runs, key=lambda run: run[0])[0]
        shown = f"phases {first:.2f} / {span:.2f} / {tail:.2f} s; {seen['polls']} poll sleeps"
        if index == 0:
            submit = seen["_submit_jobs_end_s"] - seen["_submit_jobs_start_s"]
            wait = seen["_wait_all_end_s"] - seen["_wait_all_start_s"]
            report.add(
                Row(
                    f"{figure}i",
                    f"  {label}",
                    seen["save_s"],
                    "s",
                    note=f"{seen['saves']} saves in a {seconds:.2f} s apply; submit phase "
                    f"{submit:.2f} s, wait phase {wait:.2f} s; {shown}",
                )
            )
        else:
            value = median([run[0] for run in runs])
            report.add(
                Row(
                    f"{figure}i",
                    f"  {label} / raw Aer",
                    value / base,
                    "x",
                    note=f"{value:.2f} s (median of {len(runs)}) vs {base:.2f} s; fastest: {shown}",
                )
            )


class Server:
    """``qrt serve`` on 127.0.0.1 (free port) with a temp data dir, one user and a saved account."""

    def __init__(self, root: Path, workers: int, env: dict[str, str]) -> None:
        self.root = root
        self.workers = workers
        self.env = env
        self.data = root / "server-data"
        self.log_path = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.account = "bench"

    def start(self, token: str | None = None, port: int = 0) -> None:
        """Create the user and start; with ``token``, start on the data dir as it was left (on
        ``port``: the URL is part of the lockfile's target)."""
        if token is None:
            token = run_checked(
                [*qrt_command(), "users", "create", USER, "--data-dir", str(self.data)], self.env
            )
            token = token.strip().splitlines()[-1]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *qrt_command(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(self.data),
                    "--workers",
                    str(self.workers),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while not self.url:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"qrt serve did not start:\n{self.log_path.read_text()}")
            else:
                time.sleep(0.05)
        port = int(self.url.rsplit(":", 1)[1])
        while True:
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/version")
                if connection.getresponse().status == 200:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"qrt serve not ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        run_checked(
            [
                *qrt_command(),
                "account",
                "save",
                "--name",
                self.account,
                "--channel",
                "ibm_quantum",
                "--url",
                f"{self.url}/api",
                "--token",
                token,
                "--overwrite",
            ],
            self.env,
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        tree = {pid: cmdline(pid) for pid in descendants(proc.pid)}
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        kill_leftovers(tree)


def figure_2_and_6(report: Report, settings: Settings, tmp: Path, do_2: bool, do_6: bool) -> None:
    progress("figures 2/6: qrt serve --workers 2")
    env = client_env(tmp / "home")
    server = Server(tmp / "serve", 2, env)
    server.root.mkdir()
    counter = iter(range(1_000_000))
    account = ("--account", server.account)
    try:
        server.start()
        assert server.proc is not None
        # warm-up: both workers (a few built-in jobs) and the sandbox pool (one uploaded program)
        timed_apply(bell_project(tmp / "serve-warm", 8), env, 8, *account)
        run_checked(
            [
                *qrt_command(),
                *account,
                "-C",
                str(program_project(tmp / "serve-prog")),
                "apply",
                "--auto-approve",
            ],
            env,
        )
        server_pid = server.proc.pid
        waited = wait_warm(server_pid, 2, 2)
        progress(f"  server warm ({waited:.1f} s after the warm-up jobs)")
        if do_6:
            figure_6(report, server.proc.pid, "after warm-up")
        if do_2:

            def fresh(seed_per_job: bool = True) -> Path:
                return bell_project(tmp / f"fig2-{next(counter)}", settings.jobs, seed_per_job)

            base = compare_applies(
                report,
                "2",
                f"apply {settings.jobs} Bell jobs over qrt serve / raw Aer",
                "<= 3",
                settings,
                fresh,
                env,
                account,
                server_cpu=lambda: tree_cpu(server_pid),
            )
            if settings.probes:
                probe_applies(report, "2", settings, base, fresh, env, account)
            if do_6:
                wait_warm(server.proc.pid, 2, 2)
                figure_6(
                    report,
                    server.proc.pid,
                    f"after figure 2 ({settings.reps} x {settings.jobs} jobs)",
                    info=True,
                )
    finally:
        server.stop()


def figure_6(report: Report, pid: int, when: str, *, info: bool = False) -> None:
    sums = memory(pid)
    total = sums["total"]
    parts = ", ".join(
        f"{kind} {sums[kind]['rss']:.0f}/{sums[kind]['pss']:.0f} ({int(sums[kind]['count'])} proc)"
        for kind in ("server", "worker", "sandbox", "bwrap")
        if kind in sums
    )
    figure = "6i" if info else "6"
    report.add(
        Row(
            figure,
            f"qrt serve --workers 2 RSS, process tree, {when}",
            total["rss"],
            "MiB",
            note=parts,
        )
    )
    report.add(
        Row(
            figure,
            f"qrt serve --workers 2 PSS, process tree, {when}",
            total["pss"],
            "MiB",
            note="RSS/PSS MiB by role",
        )
    )


# -- figures 3, 4, 5: the engine in this process -----------------------------------------------


class Engine:
    """A RuntimeService over a LocalExecutor on a temp Store, started with warm workers and pool."""

    def __init__(self, root: Path, workers: int, **options: Any) -> None:
        root.mkdir(parents=True)
        self.store = Store(root / "runtime.db")
        self.owner = self.store.ensure_user(USER)
        self.workers = workers
        self.executor = LocalExecutor(self.store, workers=workers, prewarm=True, **options)
        self.service = RuntimeService(self.store, self.executor)
        self.executor.start()
        self.warm()

    def warm(self) -> None:
        wait_warm(os.getpid(), self.workers, self.workers)

    def submit(self, program_id: str, params: dict[str, Any]) -> str:
        return self.service.run(
            self.owner, program_id, json.dumps(params), backend="aer_simulator"
        ).id

    def wait(self) -> None:
        if not self.executor.wait_idle(timeout=600):
            raise RuntimeError("jobs still running after 600 s")

    def check(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            job = self.service.job(self.owner, job_id)
            if job.status != "COMPLETED":
                raise RuntimeError(
                    f"job {job_id} {job.status}: {self.service.job_result(self.owner, job_id)}"
                )

    def metric(self, job_id: str, name: str) -> float:
        """A metric the executor stored with the job (``worker_seconds``: the worker's round trip)."""
        record = self.store.get_job(job_id)
        assert record is not None and record.metrics is not None
        return float(record.metrics[name])

    def close(self) -> None:
        tree = {pid: cmdline(pid) for pid in descendants(os.getpid())}
        self.service.close(wait=True, timeout=30)
        self.store.close()
        kill_leftovers(tree)


@contextlib.contextmanager
def engine(root: Path, workers: int, **options: Any) -> Iterator[Engine]:
    running = Engine(root, workers, **options)
    try:
        yield running
    finally:
        running.close()


def sampler_params(circuit: str, seed: int) -> dict[str, Any]:
    return {
        "pubs": [{"circuit": circuit}],
        "options": {"default_shots": SHOTS, "seed_simulator": seed},
    }


def raw_job(circuit: str, seed: int) -> None:
    """The job's own work, as a user runs it on Aer: parse, run, counts."""
    parsed = qasm2.loads(circuit)
    result = SamplerV2(seed=seed).run([(parsed,)], shots=SHOTS).result()
    result[0].data.c.get_counts()


def raw_once(circuit: str, seed: int) -> float:
    """Seconds of one raw job."""
    began = time.perf_counter()
    raw_job(circuit, seed)
    return time.perf_counter() - began


def raw_loop(circuit: str, seeds: range) -> list[float]:
    return [raw_once(circuit, seed) for seed in seeds]


def figures_3_4(report: Report, settings: Settings, tmp: Path, do_3: bool, do_4: bool) -> None:
    progress("figures 3/4: the engine in this process, LocalExecutor(workers=1, prewarm=True)")
    with engine(tmp / "engine-1", 1) as eng:
        seeds = iter(range(10_000, 10_000_000))
        # warm-up: the worker's first jobs, this process's Aer
        warm = [eng.submit("sampler", sampler_params(BELL, next(seeds))) for _ in range(3)]
        eng.wait()
        eng.check(warm)
        raw_loop(BELL, range(5))
        if do_3:
            figure_3(report, settings, eng, seeds)
        if do_4:
            figure_4(report, settings, eng, seeds)


def program_latency(eng: Engine, jobs: int) -> tuple[str, list[float], list[float]]:
    """Uploads the trivial program and runs ``jobs`` jobs of it one at a time, the sandbox pool
    warm before each: (program id, ms from submission to final, s from submission until the
    job's replacement sandbox is warm)."""
    program = eng.service.upload_program(
        eng.owner, name="trivial", source=TRIVIAL, max_execution_time=60
    ).id
    warm = eng.submit(program, {})
    eng.wait()
    eng.check([warm])
    lat: list[float] = []
    rewarm: list[float] = []
    eng.warm()
    for _ in range(jobs):
        began = time.perf_counter()
        job = eng.submit(program, {})
        eng.wait()
        lat.append(1000 * (time.perf_counter() - began))
        eng.check([job])
        eng.warm()  # its replacement, started when the job took the warm sandbox
        rewarm.append(time.perf_counter() - began)
    return program, lat, rewarm


def figure_3(report: Report, settings: Settings, eng: Engine, seeds: Iterator[int]) -> None:
    loop_ms: list[float] = []  # own work: the job in a warm SamplerV2 loop here, per job
    alone_ms: list[float] = []  # the raw job run alone, between engine jobs (Aer idle before)
    latency: list[float] = []
    worker_s: list[float] = []
    same_seed: list[float] = []
    throughput: list[float] = []
    rounds = 3
    per_round = max(1, settings.latency_jobs // rounds)
    block = max(1, settings.fixed_jobs // rounds)
    for _ in range(rounds):
        # own work: a warm loop of `block` jobs here
        first = next(seeds)
        loop_ms += [1000 * t for t in raw_loop(BELL, range(first, first + block))]
        # throughput: `block` jobs back to back through the engine
        began = time.perf_counter()
        jobs = [eng.submit("sampler", sampler_params(BELL, next(seeds))) for _ in range(block)]
        eng.wait()
        throughput.append(1000 * (time.perf_counter() - began) / len(jobs))
        eng.check(jobs)
        # latency: one engine job at a time (and the raw job alone, for comparison)
        for _ in range(per_round):
            alone_ms.append(1000 * raw_once(BELL, next(seeds)))
            began = time.perf_counter()
            job = eng.submit("sampler", sampler_params(BELL, next(seeds)))
            eng.wait()
            latency.append(1000 * (time.perf_counter() - began))
            eng.check([job])
            worker_s.append(1000 * eng.metric(job, "worker_seconds"))
            # the same job with one seed for all (the worker's pass manager cache hits)
            began = time.perf_counter()
            job = eng.submit("sampler", sampler_params(BELL, 7))
            eng.wait()
            same_seed.append(1000 * (time.perf_counter() - began))
    own = median(loop_ms)
    report.add(
        Row(
            "3i",
            "built-in Bell job's own work (warm SamplerV2 loop here)",
            own,
            "ms",
            note=f"median of {len(loop_ms)}; the same job run alone between engine jobs: "
            f"{median(alone_ms):.1f} ms (Aer idle before it)",
        )
    )
    report.add(
        Row(
            "3",
            f"built-in fixed cost, throughput ({settings.fixed_jobs} back to back, 1 worker)",
            median(throughput) - own,
            "ms",
            "<= 5",
            f"{median(throughput):.1f} ms/job - {own:.1f} ms own work",
        )
    )
    report.add(
        Row(
            "3",
            "built-in fixed cost, latency (one job at a time, worker warm)",
            median(latency) - own,
            "ms",
            "<= 5",
            f"{median(latency):.1f} ms submit->final - {own:.1f} ms own work",
        )
    )
    report.add(
        Row(
            "3i",
            "  of which in the worker (worker_seconds - own work)",
            median(worker_s) - own,
            "ms",
            note=f"worker_seconds median {median(worker_s):.1f} ms",
        )
    )
    report.add(
        Row(
            "3i",
            "  latency fixed cost when every job has the same seed",
            median(same_seed) - own,
            "ms",
            note="the worker's pass manager cache is keyed by seed",
        )
    )
    # uploaded program
    program, lat, rewarm = program_latency(eng, settings.program_latency_jobs)
    startup_cpu = [
        cpu_seconds(pid) for pid in descendants(os.getpid()) if role(pid) in ("sandbox", "worker")
    ]
    report.add(
        Row(
            "3",
            "program fixed cost, latency (one job at a time, sandbox pool warm)",
            median(lat),
            "ms",
            "<= 50",
            f"trivial `return 1`; min {min(lat):.1f} ms",
        )
    )
    eng.warm()
    began = time.perf_counter()
    jobs = [eng.submit(program, {}) for _ in range(settings.program_jobs)]
    eng.wait()
    per_job = 1000 * (time.perf_counter() - began) / len(jobs)
    eng.check(jobs)
    report.add(
        Row(
            "3",
            f"program fixed cost, throughput ({settings.program_jobs} back to back, pool of 1)",
            per_job,
            "ms",
            "<= 50",
            "each job after the first waits for a fresh sandbox to warm up",
        )
    )
    report.add(
        Row(
            "3i",
            "  a sandbox's warm-up, wall (job submitted -> replacement warm)",
            median(rewarm),
            "s",
            note=f"warm worker + sandbox CPU so far: {', '.join(f'{s:.2f} s' for s in startup_cpu)}",
        )
    )
    eng.warm()


def figure_4(report: Report, settings: Settings, eng: Engine, seeds: Iterator[int]) -> None:
    circuit = ghz(20)
    raw_s: list[float] = []
    engine_s: list[float] = []
    worker_s: list[float] = []
    same_seed: list[float] = []
    for _ in range(2):  # warm-up of both sides on this circuit
        raw_job(circuit, next(seeds))
        eng.submit("sampler", sampler_params(circuit, 7))
        eng.wait()
    for _ in range(settings.big_reps):
        raw_s.append(1000 * raw_once(circuit, next(seeds)))
        began = time.perf_counter()
        job = eng.submit("sampler", sampler_params(circuit, next(seeds)))
        eng.wait()
        engine_s.append(1000 * (time.perf_counter() - began))
        eng.check([job])
        worker_s.append(1000 * eng.metric(job, "worker_seconds"))
        began = time.perf_counter()
        eng.submit("sampler", sampler_params(circuit, 7))
        eng.wait()
        same_seed.append(1000 * (time.perf_counter() - began))
    raw = median(raw_s)
    report.add(
        Row(
            "4",
            "20-qubit GHZ sampler job: engine (1 worker) / raw SamplerV2",
            median(engine_s) / raw,
            "x",
            "<= 1.2",
            f"{median(engine_s):.1f} ms vs {raw:.1f} ms (medians of {settings.big_reps}); "
            f"worker_seconds {median(worker_s):.1f} ms",
        )
    )
    report.add(
        Row(
            "4i",
            "  the same when every job has the same seed",
            median(same_seed) / raw,
            "x",
            note=f"{median(same_seed):.1f} ms",
        )
    )


def figure_5(report: Report, settings: Settings, tmp: Path) -> None:
    progress(f"figure 5: {settings.par_jobs} x 16-qubit GHZ jobs, workers=2 vs workers=1")
    circuit = ghz(16)
    times: dict[int, list[float]] = {1: [], 2: []}
    seeds = iter(range(1_000_000))
    counter = iter(range(1_000_000))
    for _ in range(settings.par_reps):
        for workers in (1, 2):
            with engine(tmp / f"par-{next(counter)}", workers) as eng:
                warm = [
                    eng.submit("sampler", sampler_params(circuit, next(seeds)))
                    for _ in range(2 * workers)
                ]
                eng.wait()
                eng.check(warm)
                began = time.perf_counter()
                jobs = [
                    eng.submit("sampler", sampler_params(circuit, next(seeds)))
                    for _ in range(settings.par_jobs)
                ]
                eng.wait()
                times[workers].append(time.perf_counter() - began)
                eng.check(jobs)
            progress(f"  workers={workers}: {times[workers][-1]:.2f} s")
    report.add(
        Row(
            "5",
            f"{settings.par_jobs} x 16-qubit GHZ jobs: speed-up of 2 workers over 1",
            median(times[1]) / median(times[2]),
            "x",
            ">= 1.8",
            f"{median(times[1]):.2f} s vs {median(times[2]):.2f} s (medians of {settings.par_reps})",
        )
    )
    # workers=1 gives Aer cpu_count OpenMP threads, workers=2 one each: what that alone does
    qasm = tmp / "ghz16.qasm"
    qasm.write_text(circuit)
    loops: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for _ in range(settings.par_reps):
        for threads in (1, 2):
            args = [sys.executable, str(BENCH / "aer_baseline.py"), str(qasm), "50", str(SHOTS)]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            seen = json.loads(run_checked(args, env).strip().splitlines()[-1])
            loops[threads].append((seen["loop_s"] * 20, seen["loop_cpu_s"] * 20))
    shown = {
        n: (median([w for w, _ in loops[n]]), median([c for _, c in loops[n]])) for n in (1, 2)
    }
    report.add(
        Row(
            "5i",
            "  raw Aer, 16-qubit GHZ job with 2 OpenMP threads / with 1",
            shown[2][0] / shown[1][0],
            "x",
            note=f"{shown[2][0]:.1f} vs {shown[1][0]:.1f} ms/job wall, {shown[2][1]:.1f} vs "
            f"{shown[1][1]:.1f} ms/job CPU (OMP_NUM_THREADS, 50 jobs in a process)",
        )
    )


# -- main --------------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"nproc {os.cpu_count()}, {model}"


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait (guest is in user)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    return mine.ru_utime + mine.ru_stime + children_cpu()


@contextlib.contextmanager
def others_load() -> Iterator[list[float]]:
    """Yields a list that holds, afterwards, how many cores other processes kept busy meanwhile
    (machine busy time minus this benchmark's own, its finished children included)."""
    found = [0.0]
    busy, own, began = _busy_seconds(), _own_seconds(), time.perf_counter()
    yield found
    elapsed = time.perf_counter() - began
    found[0] = max(0.0, (_busy_seconds() - busy) - (_own_seconds() - own)) / elapsed


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and jobs (< 1 min)")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="figures to run, e.g. 1,3")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    only = {part.strip() for part in args.only.split(",")}
    settings = QUICK if args.quick else FULL
    report = Report()
    began = time.perf_counter()
    load_before = loadavg()
    print(
        f"{machine()}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; load {load_before}",
        flush=True,
    )
    noise: list[str] = []
    groups: list[tuple[str, Callable[[], None]]] = []
    with tempfile.TemporaryDirectory(prefix="qrt-bench-") as name:
        tmp = Path(name)
        (tmp / "home").mkdir()
        if "1" in only:
            groups.append(("1", lambda: figure_1(report, settings, tmp)))
        if "2" in only or "6" in only:
            groups.append(
                ("2/6", lambda: figure_2_and_6(report, settings, tmp, "2" in only, "6" in only))
            )
        if "3" in only or "4" in only:
            groups.append(
                ("3/4", lambda: figures_3_4(report, settings, tmp, "3" in only, "4" in only))
            )
        if "5" in only:
            groups.append(("5", lambda: figure_5(report, settings, tmp)))
        try:
            for label, run in groups:
                with others_load() as load:
                    run()
                noise.append(f"fig {label}: {load[0]:.2f}")
                progress(
                    f"  other processes used {load[0]:.2f} of {os.cpu_count()} cores meanwhile"
                )
        finally:
            kill_leftovers({pid: cmdline(pid) for pid in descendants(os.getpid())})
    elapsed = time.perf_counter() - began
    print()
    print(report.table())
    print(
        f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; load average before "
        f"{load_before}, after {loadavg()}; cores used by other processes meanwhile: "
        f"{', '.join(noise)} (of {os.cpu_count()})"
    )
    if args.json:
        rows = [dict(vars(row), met=row.met) for row in report.rows]
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
