"""``qrt apply`` against a real ``qrt serve`` through a proxy that fails about a fifth of all requests:
503 without forwarding, 500 after forwarding (the server acted), 429 with Retry-After, connection
resets before and after forwarding, and timeouts (no answer at all, forwarded or not). The apply
must end well, with every job submitted exactly once, every job id in ``qrt.lock`` and the right
results; the test counts what it injected.

Faults are drawn per request from ``random.Random(seed, request number)``; the seed is printed and
``QRT_FAULT_SEED=N`` replays the draws. The first job submissions and the first program upload get
the ambiguous faults (500, reset and timeout after forwarding) and the first job listing a 429,
whatever the draws, so each of those is exercised on every run. Short timeouts and back-off come from qrt.yaml's ``http:`` settings.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from qrt_apply.runtime.http import DEFAULT_TIMEOUT, http_options
from qrt_apply.runtime.http_wire import RetryPolicy

from projects import BELL, qrt, write
from support.bell_batch import bell_jobs, lock_ids, server_jobs, shots_of
from support.proxy import Seen, Verdict, running_proxy
from support.serve import running_server

JOBS = 6
FAULT_RATE = 0.2
# Timeouts short enough that an unanswered request costs little, retries enough that 20 % failures
# never exhaust them (0.2 ** 10 per call).
HTTP_SETTINGS = """
http:
  timeout: 2
  submit_timeout: 2
  retries: 10
  backoff: 0.05
  backoff_max: 0.5
  retry_time: 120
"""
PROGRAM = "def main(backend, user_messenger, **kwargs):\n    return kwargs\n"


def manifest(version: int) -> str:
    jobs = bell_jobs(JOBS, version)
    return f"""
apiVersion: qrt/v1
kind: Program
name: faulty-echo
source: ../programs/echo.py
max_execution_time: 60
---
apiVersion: qrt/v1
kind: JobBatch
name: faults
program: sampler
backend: aer_simulator
jobs:{jobs}"""


# kind -> (forwarded?, what the client gets); "silence" answers nothing until the client
# gives up.
KINDS: dict[str, tuple[bool, str]] = {
    "503 not forwarded": (False, "status"),
    "500 after forwarding": (True, "status"),
    "429 Retry-After": (False, "status"),
    "reset before forwarding": (False, "reset"),
    "reset after forwarding": (True, "reset"),
    "timeout, not forwarded": (False, "silence"),
    "timeout after forwarding": (True, "silence"),
}
# Every run, whatever the draws: the first three POST /jobs, the first POST /programs and the first
# GET /jobs (a listing) meet these.
FORCED_JOBS = ("500 after forwarding", "reset after forwarding", "timeout after forwarding")
FORCED_PROGRAM = "reset after forwarding"
FORCED_LISTING = "429 Retry-After"


class Faults:
    """The proxy's rule: a seeded draw per request, and a count of each kind injected."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._forced_jobs = list(FORCED_JOBS)
        self._forced_program = [FORCED_PROGRAM]
        self._forced_listing = [FORCED_LISTING]

    def __call__(self, seen: Seen) -> Verdict:
        kind = self._kind(seen)
        with self._lock:
            self.requests += 1
            if kind is not None:
                self.injected[kind] += 1
        if kind is None:
            return Verdict()
        forward, answer = KINDS[kind]
        if kind == "429 Retry-After":
            return Verdict(forward=False, answer="status", status=429, retry_after="1")
        status = 500 if kind == "500 after forwarding" else 503
        return Verdict(forward=forward, answer=answer, status=status)

    def _kind(self, seen: Seen) -> str | None:
        with self._lock:
            if seen.method == "POST" and seen.path.endswith("/jobs") and self._forced_jobs:
                return self._forced_jobs.pop(0)
            if seen.method == "POST" and seen.path.endswith("/programs") and self._forced_program:
                return self._forced_program.pop(0)
            if seen.method == "GET" and seen.path.endswith("/jobs") and self._forced_listing:
                return self._forced_listing.pop(0)
        draw = random.Random(f"{self.seed}/{seen.number}")
        if draw.random() >= FAULT_RATE:
            return None
        return draw.choice(sorted(KINDS))


def test_http_settings_come_from_qrt_yaml() -> None:
    assert http_options(None) == {"retry": RetryPolicy()}
    options = http_options(
        {"timeout": 2, "submit_timeout": 7, "retries": 9, "backoff": 0.1, "retry_time": 30}
    )
    assert options["retry"] == RetryPolicy(
        max_attempts=9, base_delay=0.1, max_delay=RetryPolicy().max_delay, total_time=30.0
    )
    assert options["timeout"].read == 2 and options["timeout"].connect == 2
    assert options["submit_timeout"] == 7.0
    assert DEFAULT_TIMEOUT.read == 30.0


def test_a_bad_http_setting_is_refused_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "qrt.yaml", "parallelism: 2\nhttp:\n  retries: 0\n")
    write(tmp_path, "manifests/empty.yaml", "")
    done = qrt(tmp_path, "validate")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "qrt.yaml" in done.stderr and "retries" in done.stderr and ":3" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_apply_through_a_fifth_of_requests_failing_submits_each_job_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("QRT_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault test seed: {seed} (QRT_FAULT_SEED={seed} replays its draws)")
    faults = Faults(seed)
    root = tmp_path / "repo"
    write(root, "circuits/bell.qasm", BELL)
    write(root, "programs/echo.py", PROGRAM)
    write(root, "qrt.yaml", HTTP_SETTINGS)
    started = time.monotonic()
    with (
        running_server(tmp_path / "server", workers=2) as server,
        running_proxy(server.url, faults, max_hold=30) as proxy,
    ):
        saved = qrt(
            root,
            *("account", "save", "--name", "local", "--channel", "ibm_quantum"),
            *("--url", f"{proxy.url}/api", "--token", "-"),
            stdin=server.token + "\n",
        )
        assert saved.returncode == 0, saved.stdout + saved.stderr
        for version in (1, 2):  # new jobs, then every job rerun with other inputs
            write(root, "manifests/faults.yaml", manifest(version))
            done = qrt(root, "--account", "local", "apply", "--auto-approve", timeout=300)
            assert done.returncode == 0, (done.stdout, done.stderr, dict(faults.injected))
            records = json.loads((root / "qrt.lock").read_text())["jobs"]
            assert {a: shots_of(r) for a, r in records.items()} == {
                f"job.faults/j-{i}": 100 * version + i for i in range(1, JOBS + 1)
            }
        settled = qrt(root, "--account", "local", "plan", "--detailed-exitcode", timeout=300)
        assert settled.returncode == 0, settled.stdout + settled.stderr
        assert proxy.drain(60)
        jobs = server_jobs(server)
        with server.client() as http:
            programs = http.get("/programs").json()["programs"]
    lock = json.loads((root / "qrt.lock").read_text())
    known = lock_ids(lock["jobs"])
    per_params = Counter(json.dumps(job["params"], sort_keys=True) for job in jobs)
    per_tag = Counter(t for job in jobs for t in job["tags"] if t.startswith("qrt-submit:"))
    duplicates = sum(n - 1 for n in per_params.values()) + sum(n - 1 for n in per_tag.values())
    print(
        f"fault test: {faults.requests} requests, {sum(faults.injected.values())} faults injected "
        f"({dict(sorted(faults.injected.items()))}), {len(jobs)} jobs on the server, "
        f"{duplicates} duplicates, {len({j['id'] for j in jobs} - known)} unknown to qrt.lock, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert len(jobs) == 2 * JOBS and duplicates == 0
    assert {job["id"] for job in jobs} == known
    assert [p["name"] for p in programs] == ["faulty-echo"]
    assert lock["programs"]["program.faulty-echo"]["id"] == programs[0]["id"]
    for kind in {*FORCED_JOBS, FORCED_PROGRAM, FORCED_LISTING}:
        assert faults.injected[kind] >= 1
    assert sum(faults.injected.values()) >= 0.05 * faults.requests  # about a fifth, drawn
