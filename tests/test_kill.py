"""SIGKILL ``qrt apply`` at random points against a real ``qrt serve``: no job is ever submitted twice
and no submitted job is ever unknown to ``qrt.lock``.

The apply talks to the server through a loopback proxy (``support/proxy.py``). Each kill point is an
*event*, never a delay: the proxy holds the N-th request of the run (any request), or the M-th
``POST /jobs``, before forwarding it (then forwards it after the kill: a POST in flight when qrt
died, or drops it) or after forwarding it (the server acted, the answer is lost); the test kills
qrt while the request is held, and only then releases it. Kills are chained: the next apply starts
at once, with the journal of the killed one and possibly a POST still landing on the server. An
apply that runs to the end is checked, and the manifests then change so the next apply has new
work; sometimes they change right after a kill (the next apply reruns addresses whose submission
was interrupted).

Checked on the server itself (not through qrt): every (address, manifest version) has at most one
job, every ``qrt-submit`` tag at most one job, and every job's id is in ``qrt.lock`` (as the
address's job or in its history) once an apply has converged.

Each apply is a ``qrt apply`` process forked from a launcher that has imported qrt once (see
``_LAUNCHER``): fifty Python start-ups would cost more than the applies on a loaded machine.

Seeded: the seed is printed; ``QRT_KILL_SEED=N`` replays a run's kill points (timing may still
make a replay take other paths; the checks hold on every path).
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from projects import BELL, qrt, write
from support.bell_batch import bell_jobs, lock_ids, server_jobs, shots_of
from support.proxy import Proxy, Seen, Verdict, running_proxy
from support.serve import ServerHandle, running_server

pytestmark = pytest.mark.slow

KILLS = 50
JOBS = 4
RUN_TIMEOUT = 120.0  # one apply; the proxy never holds longer than its max_hold (60 s)


def manifest(version: int) -> str:
    """``JOBS`` small sampler jobs, and two more in one session; ``version`` goes into every job's
    shots, so each version is new work for every address and a job's params name its (address,
    version)."""
    jobs = bell_jobs(JOBS, version)
    return f"""
apiVersion: qrt/v1
kind: JobBatch
name: kill
program: sampler
backend: aer_simulator
tags: [kill-test]
jobs:{jobs}
---
apiVersion: qrt/v1
kind: JobBatch
name: sess
program: sampler
backend: aer_simulator
session: true
jobs:
  - name: s-1
    inputs:
      pubs:
        - circuit: {{$file: ../circuits/bell.qasm}}
          shots: {100 * version + 51}
  - name: s-2
    inputs:
      pubs:
        - circuit: {{$file: ../circuits/bell.qasm}}
          shots: {100 * version + 52}
"""


@dataclass
class KillPoint:
    """Hold the ``number``-th request of the run (``post_only``: the ``number``-th POST /jobs),
    before forwarding it (``after=False``; then forward it after the kill or not) or after."""

    number: int
    post_only: bool
    after: bool
    forward: bool

    def describe(self) -> str:
        what = f"POST /jobs #{self.number}" if self.post_only else f"request #{self.number}"
        when = (
            "after forwarding" if self.after else ("forwarded late" if self.forward else "dropped")
        )
        return f"{what}, {when}"


class Killer:
    """The proxy's rule: arms one kill point per run and tells the test when it is reached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.point: KillPoint | None = None
        self.requests = 0
        self.posts = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def arm(self, point: KillPoint | None) -> None:
        with self._lock:
            self.point, self.requests, self.posts = point, 0, 0
            self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, seen: Seen) -> Verdict:
        with self._lock:
            self.requests += 1
            is_post = seen.method == "POST" and seen.path.endswith("/jobs")
            self.posts += is_post
            point = self.point
            if point is None or self.reached.is_set():
                return Verdict()
            hit = (
                (is_post and self.posts == point.number)
                if point.post_only
                else self.requests == point.number
            )
            if not hit:
                return Verdict()
            self.reached.set()
            return Verdict(forward=point.forward, hold=self.release, hold_after=point.after)


# Starting Python and importing qrt for each of ~60 applies costs more than the applies do on a
# loaded machine, so one launcher process imports qrt once and forks each ``qrt apply`` from there:
# the child runs ``qrt_apply.cli.main`` with the apply's argv, exactly what the ``qrt`` script
# runs. The launcher is single-threaded (safe to fork) and is the child's parent, so it sends the
# SIGKILL itself, to a child it has not reaped yet (no pid reuse).
_LAUNCHER = r"""
import json, os, select, signal, sys
import qrt_apply.cli, qrt_apply.commands.core, qrt_apply.apply, qrt_apply.plan
import qrt_apply.runtime.http, qrt_apply.runtime.encoding, qrt_apply.manifests

def child(argv, out_path):
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.argv = ["qrt", *argv]
    try:
        qrt_apply.cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

def read_line():
    # Unbuffered, so that select() on fd 0 sees every line not read yet.
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1)
        if not chunk:
            return None
        data += chunk
    return data.decode().strip()

print("ready", flush=True)
while (line := read_line()) is not None:
    if line == "kill":  # sent as the child ended by itself: nothing left to kill
        continue
    argv, out_path = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(argv, out_path)
    print(pid, flush=True)
    while True:
        if select.select([0], [], [], 0.02)[0]:
            assert read_line() == "kill"
            os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
            status = os.waitpid(pid, 0)[1]
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


class Launcher:
    """Runs ``qrt apply`` processes forked from one warm process (see ``_LAUNCHER``)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.workdir = workdir
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.lines.get(timeout=RUN_TIMEOUT) == "ready"
        self.runs = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def run(self, argv: list[str], kill_when: threading.Event) -> tuple[int, str]:
        """Run ``qrt *argv``; SIGKILL it as soon as ``kill_when`` is set. Returns its exit code
        (-9 when killed) and its output."""
        self.runs += 1
        out_path = self.workdir / f"apply-{self.runs}.out"
        self._send(json.dumps([argv, str(out_path)]))
        int(self.lines.get(timeout=RUN_TIMEOUT))  # the child's pid: it is running
        deadline = time.monotonic() + RUN_TIMEOUT
        # Whichever comes first: the kill point is reached, or the apply ends without reaching it.
        while not kill_when.wait(0.02) and self.lines.empty():
            assert time.monotonic() < deadline, "qrt apply neither ended nor reached the kill point"
        if self.lines.empty():
            self._send("kill")
        code = int(self.lines.get(timeout=RUN_TIMEOUT))
        return code, out_path.read_text(errors="replace")

    def close(self) -> None:
        """Kill a child still running (a failed test), then end the launcher."""
        try:
            self._send("kill")
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=RUN_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self._reader.join(RUN_TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


def _run_apply(launcher: Launcher, root: Path, killer: Killer, point: KillPoint | None) -> bool:
    """One ``qrt apply``; True if it was killed at ``point``, False if it ran to the end (exit 0)."""
    killer.arm(point)
    try:
        argv = ["-C", str(root), "--account", "local", "apply", "--auto-approve"]
        code, output = launcher.run(argv, killer.reached)
    finally:
        killer.release.set()  # only now: the held request goes on (or not) with qrt dead
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"apply failed ({point}):\n{output}"
    return False


@dataclass
class Tally:
    kills: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    completed_applies: int = 0
    duplicates: int = 0
    unknown: int = 0
    jobs_on_server: int = 0
    versions: int = 1
    # Ids found in qrt.lock by an earlier check (the lockfile keeps the last 10 runs per address).
    verified: set[str] = field(default_factory=set)
    trace: list[str] = field(default_factory=list)  # what each apply met, for failure messages


def _check(server: ServerHandle, proxy: Proxy, root: Path, version: int, tally: Tally) -> None:
    """After an apply that ran to the end: the manifests' jobs are done with their results, and
    the server holds no duplicate and no job the lockfile does not know."""
    assert proxy.drain(60), "a held request never finished"
    records = json.loads((root / "qrt.lock").read_text())["jobs"]
    known = lock_ids(records)
    assert {a: shots_of(r) for a, r in records.items()} == {
        **{f"job.kill/j-{i}": 100 * version + i for i in range(1, JOBS + 1)},
        **{f"job.sess/s-{i}": 100 * version + 50 + i for i in (1, 2)},
    }, tally.trace
    jobs = server_jobs(server)
    per_params = Counter(json.dumps(j.get("params"), sort_keys=True) for j in jobs)
    per_tag = Counter(t for j in jobs for t in j.get("tags") or [] if t.startswith("qrt-submit:"))
    tally.duplicates += sum(n - 1 for n in per_params.values())
    tally.jobs_on_server = len(jobs)
    assert tally.duplicates == 0, ([p for p, n in per_params.items() if n > 1], tally.trace)
    assert set(per_tag.values()) == {1}, tally.trace
    unknown = {j["id"] for j in jobs} - known - tally.verified
    tally.unknown += len(unknown)
    tally.verified |= {j["id"] for j in jobs}
    lost = [(j["id"], j["created"], j.get("params")) for j in jobs if j["id"] in unknown]
    assert not lost, (lost, tally.trace)


def _choose(rng: random.Random) -> KillPoint:
    if rng.random() < 0.4:
        after = rng.random() < 0.4
        return KillPoint(rng.randint(1, JOBS), True, after, after or rng.random() < 0.7)
    after = rng.random() < 0.3
    return KillPoint(rng.randint(1, 26), False, after, after or rng.random() < 0.5)


def test_sigkill_at_random_points_leaves_no_duplicate_and_no_unknown_job(tmp_path: Path) -> None:
    seed = int(os.environ.get("QRT_KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill test seed: {seed} (QRT_KILL_SEED={seed} replays its kill points)")
    rng = random.Random(seed)
    root = tmp_path / "repo"
    write(root, "circuits/bell.qasm", BELL)
    write(root, "manifests/kill.yaml", manifest(1))
    killer = Killer()
    tally = Tally()
    started = time.monotonic()
    with (
        running_server(tmp_path / "server", workers=2) as server,
        running_proxy(server.url, killer) as proxy,
    ):
        env = {**os.environ, "HOME": str(root / "home")}
        for key in ("TOKEN", "URL", "CHANNEL", "INSTANCE"):
            env.pop(f"QISKIT_IBM_{key}", None)
        saved = qrt(
            root,
            *("account", "save", "--name", "local", "--channel", "ibm_quantum"),
            *("--url", f"{proxy.url}/api", "--token", "-"),
            stdin=server.token + "\n",
        )
        assert saved.returncode == 0, saved.stdout + saved.stderr
        launcher = Launcher(env, tmp_path)
        try:
            _kill_and_check(launcher, server, proxy, root, killer, rng, tally)
        finally:
            launcher.close()
    print(
        f"kill test: {tally.kills} kills ({dict(tally.by_kind)}), "
        f"{tally.completed_applies} applies ran to the end, {tally.versions} manifest versions, "
        f"{tally.jobs_on_server} jobs on the server, {tally.duplicates} duplicates, "
        f"{tally.unknown} unknown to qrt.lock, {time.monotonic() - started:.1f} s"
    )


def _kill_and_check(
    launcher: Launcher,
    server: ServerHandle,
    proxy: Proxy,
    root: Path,
    killer: Killer,
    rng: random.Random,
    tally: Tally,
) -> None:
    version = 1
    while tally.kills < KILLS:
        point = _choose(rng)
        killed = _run_apply(launcher, root, killer, point)
        tally.trace.append(f"v{version} {point.describe()}: {'killed' if killed else 'ended'}")
        if killed:
            tally.kills += 1
            tally.by_kind[point.describe().split(",")[0].split(" #")[0]] += 1
            if rng.random() < 0.15:  # the manifests change before the next apply
                assert proxy.drain(60)
                version += 1
                write(root, "manifests/kill.yaml", manifest(version))
            continue
        tally.completed_applies += 1
        _check(server, proxy, root, version, tally)
        version += 1
        write(root, "manifests/kill.yaml", manifest(version))
    assert not _run_apply(launcher, root, killer, None)
    tally.completed_applies += 1
    _check(server, proxy, root, version, tally)
    tally.versions = version
