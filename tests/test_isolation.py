"""Hostile uploaded programs against a real ``qrt serve``: each isolation property of the sandbox
(``qrt_apply/engine/sandbox.py``) is attacked the way a user B would attack it, and user A's
program, job, results and token must come out of it untouched.

The server runs on 127.0.0.1 with an extra environment variable holding a random secret, so that a
leak of its environment is detectable. User A uploads a program and runs it (and a built-in job, so
that the server has a warm worker process) before B's attacks. B's programs are the files under
``tests/programs/hostile/``: each catches its own failures and returns a report of what it could
and could not do; the tests assert on that report and, where possible, on the host. A probe that
would do harm outside a sandbox (``kill(-1)``, writes) is written to be harmless or to refuse when
it finds itself unsandboxed, so that a broken sandbox fails the tests without damaging the machine.

Only loopback addresses are ever used. Every wait polls with a generous bound; nothing depends on
speed. Every test leaves no process behind, and the server is always stopped.

Three attacks that once succeeded are kept as tests of what closed them: a job's memory as a whole
(a memory cgroup per sandbox), a tmpfs of the job's own in a new user namespace (the seccomp
filter), and the host's disk through the job directory (an in-memory, size-limited ``/job``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import signal
import site
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import qrt_apply
from qrt_apply.engine.sandbox import Limits, probe

from support.serve import ServerHandle, running_server

pytestmark = pytest.mark.slow

HOSTILE = Path(__file__).parent / "programs" / "hostile"
SECRET = f"qrt-isolation-secret-{secrets.token_hex(16)}"
FINAL = ("COMPLETED", "FAILED", "CANCELLED")
LIMITS = Limits()  # what the server's sandboxes run under (qrt serve's defaults)

# A's program: its source and result carry a token of their own, so any change is visible.
VICTIM_TOKEN = secrets.token_hex(8)
VICTIM_SOURCE = f'''
def main(backend, user_messenger, **kwargs):
    user_messenger.publish({{"progress": "{VICTIM_TOKEN}"}})
    return {{"owner": "alice", "token": "{VICTIM_TOKEN}", "inputs": kwargs}}
'''
BELL = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n'

# What a program sees of itself: enough to tell a sandbox from a plain child process.
WHOAMI = """
import os

def main(backend, user_messenger, **kwargs):
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "pid": os.getpid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "root": sorted(os.listdir("/")),
    }
"""

T = TypeVar("T")


# -- the server, the two users and A's data ------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    reason = probe()
    if reason is not None:
        pytest.skip(
            f"this machine cannot make the sandbox, so there is nothing to attack: {reason}"
        )
    base = tmp_path_factory.mktemp("isolation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QRT_TEST_SECRET", SECRET)
        with running_server(base, users=("alice", "bob")) as handle:
            patch.undo()  # the secret stays in the server's environment only
            yield handle


@pytest.fixture(scope="module")
def alice(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client("alice") as http:
        yield http


@pytest.fixture(scope="module")
def bob(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client("bob") as http:
        yield http


@dataclass(frozen=True)
class Victim:
    """What A has on the server before B's attacks."""

    program_id: str
    source: str
    job_id: str
    job_state: dict[str, Any]
    result: str
    interim: list[str]
    builtin_job_id: str


@pytest.fixture(scope="module")
def victim(server: ServerHandle, alice: httpx.Client) -> Victim:
    program_id = upload(alice, "victim", VICTIM_SOURCE)
    done = run(alice, program_id, {"secret_input": VICTIM_TOKEN})
    assert done.status == "COMPLETED", done.describe()
    assert json.loads(done.result)["token"] == VICTIM_TOKEN
    source = alice.get(f"/programs/{program_id}").json()["data"]
    assert source == VICTIM_SOURCE
    # a built-in job too: the server then has a warm worker process, another target for B
    builtin = run(alice, "sampler", {"pubs": [{"circuit": BELL, "shots": 10}]})
    assert builtin.status == "COMPLETED", builtin.describe()
    return Victim(
        program_id=program_id,
        source=source,
        job_id=done.job_id,
        job_state=done.job["state"],
        result=done.result,
        interim=done.interim,
        builtin_job_id=builtin.job_id,
    )


def check_victim(server: ServerHandle, victim: Victim) -> None:
    """The server is alive and answers; A's program, job and results are as they were; A's API
    token still logs in; both databases are still there."""
    assert server.process is not None and server.process.poll() is None, server.log()[-4000:]
    with server.client("alice") as http:  # a fresh login with A's API token
        program = http.get(f"/programs/{victim.program_id}")
        assert program.status_code == 200, program.text
        assert program.json()["data"] == victim.source
        job = http.get(f"/jobs/{victim.job_id}")
        assert job.status_code == 200, job.text
        assert job.json()["state"] == victim.job_state
        assert http.get(f"/jobs/{victim.job_id}/results").text == victim.result
        assert http.get(f"/jobs/{victim.job_id}/interim_results").json() == victim.interim
        builtin = http.get(f"/jobs/{victim.builtin_job_id}").json()
        assert builtin["state"]["status"] == "COMPLETED"
    for name in ("runtime.db", "server.db"):
        assert (server.data_dir / name).is_file(), f"{name} is gone"


# -- helpers -------------------------------------------------------------------------------------


def hostile(name: str) -> str:
    return (HOSTILE / f"{name}.py").read_text(encoding="utf-8")


def upload(http: httpx.Client, name: str, source: str, cost: int = 120) -> str:
    body = {
        "name": f"{name}-{secrets.token_hex(4)}",
        "data": base64.b64encode(source.encode()).decode(),
        "cost": cost,
        "description": f"isolation probe {name}",
    }
    answer = http.post("/programs", content=json.dumps(body))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def submit(http: httpx.Client, program_id: str, params: dict[str, Any], **extra: Any) -> str:
    body = {"program_id": program_id, "params": params, **extra}
    answer = http.post("/jobs", content=json.dumps(body))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


def wait_final(http: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        return job if job["state"]["status"] in FINAL else None

    return wait_until(final, timeout, f"job {job_id} to end")


@dataclass
class Finished:
    job_id: str
    job: dict[str, Any]
    result: str
    logs: str
    interim: list[str]

    @property
    def status(self) -> str:
        return str(self.job["state"]["status"])

    def describe(self) -> str:
        return f"{self.job['state']}\nresult: {self.result[-3000:]}\nlogs: {self.logs[-3000:]}"

    def everything(self) -> str:
        """All a user gets back from the job, as one text."""
        return "\n".join([json.dumps(self.job), self.result, self.logs, json.dumps(self.interim)])

    def report(self) -> dict[str, Any]:
        """The hostile program's report (it completed and returned one)."""
        assert self.status == "COMPLETED", self.describe()
        value: dict[str, Any] = json.loads(self.result)
        return value


def collect(http: httpx.Client, job_id: str, timeout: float = 120) -> Finished:
    job = wait_final(http, job_id, timeout)
    return Finished(
        job_id=job_id,
        job=job,
        result=http.get(f"/jobs/{job_id}/results").text,
        logs=http.get(f"/jobs/{job_id}/logs").text,
        interim=http.get(f"/jobs/{job_id}/interim_results").json(),
    )


def run(
    http: httpx.Client,
    program_id: str,
    params: dict[str, Any],
    timeout: float = 120,
    **extra: Any,
) -> Finished:
    return collect(http, submit(http, program_id, params, **extra), timeout)


def run_hostile(
    http: httpx.Client, name: str, params: dict[str, Any], cost: int = 120, timeout: float = 120
) -> Finished:
    return run(http, upload(http, name, hostile(name), cost=cost), params, timeout=timeout)


def failed(attempt: dict[str, Any]) -> bool:
    """An ``attempt`` entry of a report that did not succeed."""
    return attempt["ok"] is False and bool(attempt["error"])


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def start_time(pid: int) -> str | None:
    """The start time of a host process (clock ticks since boot), None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def host_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def host_pids_with(token: str) -> list[int]:
    """Host processes whose command line holds ``token``."""
    return [pid for pid in host_pids() if token.encode() in cmdline(pid)]


def children_of(pid: int) -> list[int]:
    found = []
    for child in host_pids():
        try:
            text = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(child)
    return found


def server_pid(server: ServerHandle) -> int:
    assert server.process is not None
    return server.process.pid


def sandbox_folder_of(job_id: str) -> Path | None:
    """The executor's host folder of the sandbox that runs ``job_id`` (it notes the job there)."""
    for note in Path(tempfile.gettempdir()).glob("qrt-sandbox-*/job-id"):
        with contextlib.suppress(OSError, ValueError):
            if note.read_text(encoding="utf-8").split()[0] == job_id:
                return note.parent
    return None


# -- 0. the programs do run in a sandbox: every other test depends on it -------------------------


def test_uploaded_programs_run_in_a_sandbox(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    done = run(bob, upload(bob, "whoami", WHOAMI), {})
    report = done.report()
    # an unprivileged uid of its own: not the server's, not root
    assert report["uid"] not in (0, os.geteuid()) and report["euid"] == report["uid"]
    # its own pid namespace, holding nothing but the sandbox
    assert report["pid"] < 10 and len(report["pids"]) < 10, report
    # its own root file system: /job, and none of the host's /var, /run, /sys, /home... (unless
    # the Python installation lives there)
    assert "job" in report["root"], report["root"]
    pythons = (
        sys.prefix,
        sys.base_prefix,
        sys.executable,
        qrt_apply.__file__,
        *site.getsitepackages(),
    )
    needed = {Path(path).resolve().parts[1] for path in pythons}
    host_only = {"var", "run", "sys", "home", "srv", "opt", "mnt", "boot"} - needed
    assert not host_only & set(report["root"]), report["root"]
    check_victim(server, victim)


# -- 1. the server's environment -----------------------------------------------------------------


def test_the_servers_environment_is_out_of_reach(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    pid = server_pid(server)
    # the secret really is in the server's environment, so a leak would show
    assert SECRET.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    done = run_hostile(bob, "env", {"server_pid": pid})
    report = done.report()
    assert SECRET not in done.everything()
    assert "QRT_TEST_SECRET" not in report["environ"]
    # the probe can read an environ file (of a child it started), so it would read the others
    control = report["files"][f"/proc/{report['control']}/environ"]
    assert control["ok"] and "PROBE_CONTROL=visible" in control["value"], control
    assert failed(report["files"][f"/proc/{pid}/environ"])
    assert report["ppid"] != pid
    check_victim(server, victim)


# -- 2. the data directory -----------------------------------------------------------------------


def test_the_data_directory_is_out_of_reach(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    data_dir = str(server.data_dir.resolve())
    done = run_hostile(bob, "datadir", {"data_dir": data_dir, "budget": 100.0}, cost=300)
    report = done.report()
    assert failed(report["listdir"]), report["listdir"]
    for name in ("runtime.db", "server.db", "runtime.db-wal"):
        for how in ("read", "rw", "sqlite"):
            assert failed(report[f"{how} {name}"]), (how, name, report[f"{how} {name}"])
    assert report["walk_complete"], "the search of the sandbox's file system did not finish"
    stores = [
        path
        for path in report["db_files"]
        if path.startswith(data_dir) or os.path.basename(path) in ("runtime.db", "server.db")
    ]
    assert stores == []
    leaks = {
        fd: link for fd, link in report["fd_links"].items() if data_dir in link or ".db" in link
    }
    assert leaks == {}
    assert b"SQLite format 3" not in done.everything().encode()
    check_victim(server, victim)


# -- 3. the store through /proc/<pid>/fd ---------------------------------------------------------


def test_no_process_of_the_server_is_visible_through_proc(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    pid = server_pid(server)
    data_dir = str(server.data_dir.resolve())
    report = run_hostile(bob, "procfd", {"server_pid": pid}).report()
    # the sandbox's /proc shows its own pid namespace only: a few processes, not the server
    assert len(report["pids"]) < 10 and pid not in report["pids"], report["pids"]
    assert report["server_visible"] is False
    for key in ("server_fds", "server_root", "server_signal_0"):
        assert failed(report[key]), (key, report[key])
    for seen, process in report["processes"].items():
        command = process["cmdline"].get("value", "")
        assert data_dir not in command and " serve " not in command, (seen, command)
        for fd, entry in process["fds"].items():
            link = entry["link"].get("value", "")
            assert data_dir not in link and ".db" not in link, (seen, fd, link)
            if entry["rw"]["ok"]:  # only the job's own pipes and files can be opened so
                assert not link.startswith("/") or link.startswith("/job"), (seen, fd, link)
    check_victim(server, victim)


# -- 4. another job's directory ------------------------------------------------------------------


def test_another_jobs_directory_is_out_of_reach(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    token = secrets.token_hex(8)
    marker, content = f"marker-{token}", f"content-of-the-marker-{token}"
    program = upload(bob, "marker", hostile("marker"), cost=600)
    long_job = submit(bob, program, {"marker": marker, "content": content, "seconds": 300})

    def marked() -> Path | None:
        if not bob.get(f"/jobs/{long_job}/interim_results").json():
            return None
        return sandbox_folder_of(long_job)

    try:
        # the long job's /job is in memory, in its own mount namespace: the probe gets the host
        # folder its sandbox was started from, and searches everything it can see
        victim_dir = wait_until(marked, 120, "the long job's marker, and its sandbox's folder")
        done = run_hostile(
            bob, "jobdirs", {"victim": str(victim_dir), "marker": marker, "budget": 100.0}, cost=300
        )
        report = done.report()
        # the long job was still there while the probe looked for it
        assert bob.get(f"/jobs/{long_job}").json()["state"]["status"] == "RUNNING"
    finally:
        bob.post(f"/jobs/{long_job}/cancel")
        wait_final(bob, long_job)
    for key in ("victim_listdir", "victim_marker"):
        assert failed(report[key]), (key, report[key])
    # the folder's parent is the host's temporary directory: inside, /tmp is the sandbox's own
    parent = report["victim_parent"]
    assert failed(parent) or not any("qrt-sandbox" in name for name in parent["value"]), parent
    assert report["sandbox_glob"] == []
    assert not any(name.startswith("qrt-sandbox-") for name in report["tmp"].get("value", []))
    assert marker not in report["job"]
    assert report["job_parent"]["value"] == report["job_grandparent"]["value"]  # /job/.. is /
    assert not any("qrt-sandbox" in name for name in report["job_parent"]["value"])
    assert all(failed(attempt) for attempt in report["proc_roots"].values())
    assert report["search_complete"] and report["marker_anywhere"] == []
    assert content not in done.everything()
    check_victim(server, victim)


# -- 5. signals ----------------------------------------------------------------------------------


def test_signals_cannot_reach_the_server_or_its_workers(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    pid = server_pid(server)
    # the server's warm workers (trusted, root-owned if the server is) are targets too
    workers = [child for child in children_of(pid) if b"qrt_apply.engine.worker" in cmdline(child)]
    assert workers, "A's built-in job left no warm worker to attack"
    targets = [pid, *workers]
    started = {target: start_time(target) for target in targets}
    report = run_hostile(bob, "signals", {"server_pid": pid, "victims": targets}).report()
    assert not report.get("refused"), "the program found itself unsandboxed"
    assert report["server_visible"] is False
    assert failed(report["kill_server"]) and failed(report["killpg_server"]), report
    assert all(failed(attempt) for attempt in report["kill_victims"].values()), report
    # kill(-1) in the sandbox reaches nothing but the sandbox (ESRCH: nothing else it may signal)
    assert "kill_all" in report
    for target in targets:
        assert start_time(target) == started[target], f"process {target} was killed"
    check_victim(server, victim)


# -- 6. processes that outlive their job --------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "linger", "cost"), [("returns", 0.0, 120), ("cancelled", 300.0, 15)]
)
def test_no_process_outlives_its_job(
    server: ServerHandle,
    bob: httpx.Client,
    victim: Victim,
    variant: str,
    linger: float,
    cost: int,
) -> None:
    token = f"qrt-outlive-{secrets.token_hex(8)}"
    program = upload(bob, f"outlive-{variant}", hostile("outlive"), cost=cost)
    job = submit(bob, program, {"token": token, "linger": linger})
    try:
        if variant == "cancelled":
            # the grandchild is visible from the host while the job runs: the scan works
            wait_until(lambda: host_pids_with(token), 120, "the grandchild on the host")
        done = collect(bob, job)
        if variant == "returns":
            report = done.report()
        else:
            assert done.job["state"] == {"status": "CANCELLED", "reason": "RAN TOO LONG"}
            report = json.loads(done.interim[0])
        assert report["grandchild"] is not None, "the grandchild never started"
        wait_until(lambda: not host_pids_with(token), 30, f"no process holding {token}")
    finally:
        for leftover in host_pids_with(token):  # stop what a failing test left behind
            with contextlib.suppress(OSError):
                os.kill(leftover, signal.SIGKILL)
    check_victim(server, victim)


# -- 7. memory -----------------------------------------------------------------------------------


def test_a_4_gib_allocation_fails_inside_the_job(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    report = run_hostile(bob, "memory", {"gib": 4}).report()
    soft, hard = report["RLIMIT_AS"]
    assert 0 < soft <= hard <= LIMITS.memory_mb << 20
    assert report["allocate"].get("error", "").startswith("MemoryError"), report["allocate"]
    assert failed(report["raise_limit"]), report["raise_limit"]
    assert report["allocate_again"].get("error", "").startswith("MemoryError"), report
    check_victim(server, victim)


def test_a_job_as_a_whole_cannot_hold_more_than_its_memory_limit(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    # six children touching 512 MiB each (a forked launcher has no room for 1 GiB more): 3 GiB
    # in all, above the 2 GiB a sandbox is given
    done = run_hostile(bob, "memory_total", {"children": 6, "mib": 512})
    check_victim(server, victim)
    if done.status != "COMPLETED":  # the job as a whole was stopped (an OOM kill): the limit held
        assert "Traceback" not in done.result, done.describe()
        return
    report = done.report()
    # what the children held at once, resident (a child OOM-killed after it said "ok" holds 0)
    assert report["children_rss_mib"] < LIMITS.memory_mb, report


def test_a_job_cannot_take_host_memory_through_a_tmpfs_of_its_own(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    done = run_hostile(bob, "userns_tmpfs", {"mib": 1024})
    check_victim(server, victim)
    if done.status != "COMPLETED":  # the job as a whole was stopped (an OOM kill): the limit held
        assert "Traceback" not in done.result, done.describe()
        return
    report = done.report()
    # blocked at unshare, at the mount, or part-way by a memory limit: anything but "ok 1024"
    assert not report["outcome"].startswith("ok"), report


# -- 8. processes --------------------------------------------------------------------------------


def test_fork_fails_well_before_200(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    report = run_hostile(bob, "forks", {"attempts": 200}).report()
    assert report["forked"] < 100, report
    assert report["forked"] < LIMITS.processes, report
    assert report["error"] and report["error"].startswith("BlockingIOError"), report
    assert report["raise_limit"] != "raised", report
    check_victim(server, victim)


# -- 9. CPU --------------------------------------------------------------------------------------


def test_the_cpu_time_limit_is_about_max_execution_time(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    cost = 20
    report = run_hostile(bob, "cpu", {}, cost=cost).report()
    left = report["soft"] - report["used"]
    assert cost <= left <= cost + 5, report
    assert report["soft"] <= report["hard"] <= report["soft"] + 2, report
    assert failed(report["raise_hard"]), report
    assert report["after"] == [report["soft"], report["hard"]]
    check_victim(server, victim)


def test_a_cpu_spin_is_stopped(server: ServerHandle, bob: httpx.Client, victim: Victim) -> None:
    done = run_hostile(bob, "spin", {}, cost=3)
    assert done.status in ("CANCELLED", "FAILED"), done.describe()
    if done.status == "CANCELLED":
        assert done.job["state"]["reason"] == "RAN TOO LONG"
    check_victim(server, victim)


# -- 10. network ---------------------------------------------------------------------------------


def _listen(family: int, address: Any) -> socket.socket | None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.bind(address)
    except OSError:
        listener.close()
        return None
    listener.listen(8)
    return listener


def _reachable_from_here(listener: socket.socket) -> bool:
    """Connect from this (host) process and accept: the listener works."""
    with socket.socket(listener.family, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(listener.getsockname())
        listener.settimeout(10)
        accepted, _ = listener.accept()
        accepted.close()
    return True


def _nobody_connected(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        accepted, _ = listener.accept()
    except BlockingIOError:
        return True
    accepted.close()
    return False


def test_no_network_not_even_loopback(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    abstract = f"qrt-isolation-{secrets.token_hex(8)}"
    with contextlib.ExitStack() as stack:
        listeners = [
            _listen(socket.AF_INET, ("127.0.0.1", 0)),
            _listen(socket.AF_INET, ("127.0.0.2", 0)),  # None where only 127.0.0.1 exists
            _listen(socket.AF_UNIX, "\0" + abstract),
        ]
        live = [stack.enter_context(listener) for listener in listeners if listener is not None]
        assert all(_reachable_from_here(listener) for listener in live)
        targets = [("127.0.0.1", server.port)]
        targets += [
            listener.getsockname() for listener in live if listener.family == socket.AF_INET
        ]
        with httpx.Client(trust_env=False) as http:  # the server's port answers on the host
            assert http.get(f"{server.url}/api/version").status_code == 200
        report = run_hostile(bob, "network", {"targets": targets, "abstract": abstract}).report()
        for host, port in targets:
            assert host.startswith("127.")
            assert failed(report[f"tcp {host}:{port}"]), (host, port, report)
        assert failed(report["abstract unix"]), report
        assert all(_nobody_connected(listener) for listener in live)
    check_victim(server, victim)


# -- 11. writes outside /job ---------------------------------------------------------------------


def test_nothing_outside_job_is_writable(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    name = f"qrt-hostile-{secrets.token_hex(8)}"
    package = Path(qrt_apply.__file__).resolve().parent
    launcher = package / "engine" / "sandboxed.py"
    before = (hashlib.sha256(launcher.read_bytes()).hexdigest(), launcher.stat().st_mode)
    report = run_hostile(bob, "writes", {"name": name, "extra_dirs": [str(package)]}).report()
    created_on_host = []
    for directory, attempt in report["create"].items():
        assert failed(attempt), (directory, attempt)
        host_path = Path(directory) / name
        if host_path.exists():  # a hole: clean up, then fail
            created_on_host.append(str(host_path))
            host_path.unlink()
    assert created_on_host == []
    for key in ("mkdir", "open_launcher", "append_launcher", "chmod_launcher", "open_python"):
        assert failed(report[key]), (key, report[key])
    assert not (Path("/usr") / name).exists()
    assert report["job"]["ok"], "the probe could not even write to /job"
    assert (hashlib.sha256(launcher.read_bytes()).hexdigest(), launcher.stat().st_mode) == before
    check_victim(server, victim)


# -- 12. forging through the job directory -------------------------------------------------------


def _forgeries(server: ServerHandle, tmp_path: Path, token: str) -> dict[str, tuple[str, str]]:
    """Host files a symlink may point at, each with the bytes that must not come back."""
    forged_result = tmp_path / "forged-result.json"
    forged = {"status": "COMPLETED", "result": json.dumps({"forged": token}), "metrics": {}}
    forged_result.write_text(json.dumps(forged), encoding="utf-8")
    forged_interim = tmp_path / "forged-interim.jsonl"
    forged_interim.write_text(json.dumps(json.dumps({"forged": token})) + "\n", encoding="utf-8")
    for path in (forged_result, forged_interim):
        path.chmod(0o644)
    return {
        "forged-result": (str(forged_result), token),
        "forged-interim": (str(forged_interim), token),
        "runtime.db": (str(server.data_dir.resolve() / "runtime.db"), "SQLite format 3"),
        "server-environ": (f"/proc/{server_pid(server)}/environ", SECRET),
    }


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("result.json", "forged-result"),
        ("result.json", "runtime.db"),
        ("result.json", "server-environ"),
        ("interim.jsonl", "forged-interim"),
    ],
)
def test_job_files_are_read_without_following_symlinks(
    server: ServerHandle,
    bob: httpx.Client,
    victim: Victim,
    tmp_path: Path,
    name: str,
    target: str,
) -> None:
    token = f"qrt-forged-{secrets.token_hex(8)}"
    path, needle = _forgeries(server, tmp_path, token)[target]
    assert needle.encode() in Path(path).read_bytes()  # the host file holds what must not leak
    result_trap = name == "result.json"
    # a result.json trap must survive: the program ends before the launcher writes its own
    params = {"name": name, "kind": "symlink", "target": path, "exit": result_trap, "wait": 3.0}
    done = run_hostile(bob, "forge", params)
    assert needle not in done.everything(), done.describe()
    if result_trap:
        # a followed link would have been parsed (and refused, or accepted) as the result
        assert done.status == "FAILED", done.describe()
        assert "ended without a result" in done.result, done.describe()
    else:
        assert done.report()["kind"] == "symlink"
        assert done.interim == []
    check_victim(server, victim)


@pytest.mark.parametrize("name", ["result.json", "interim.jsonl"])
def test_a_fifo_job_file_does_not_hang_the_server(
    server: ServerHandle, bob: httpx.Client, victim: Victim, name: str
) -> None:
    result_trap = name == "result.json"
    params = {"name": name, "kind": "fifo", "exit": result_trap, "wait": 2.0}
    done = run_hostile(bob, "forge", params, timeout=60)
    assert done.status == ("FAILED" if result_trap else "COMPLETED"), done.describe()
    if result_trap:
        assert "ended without a result" in done.result, done.describe()
    check_victim(server, victim)


# -- the host's disk -----------------------------------------------------------------------------


def test_a_job_cannot_fill_the_hosts_disk(
    server: ServerHandle, bob: httpx.Client, victim: Victim
) -> None:
    # 17 files at the per-file limit: 1088 MiB, more than a job should be able to leave on disk
    done = run_hostile(bob, "disk", {"files": 17, "mib": LIMITS.file_size_mb})
    check_victim(server, victim)
    assert done.report()["written_mib"] < 1024, done.report()


# -- finally -------------------------------------------------------------------------------------


def test_finally_a_is_untouched_and_the_server_is_fine(
    server: ServerHandle, alice: httpx.Client, bob: httpx.Client, victim: Victim
) -> None:
    check_victim(server, victim)
    assert server.login("alice") and server.login("bob")
    # B still cannot see A's program or job, and A's job list holds A's jobs only
    assert bob.get(f"/programs/{victim.program_id}").status_code == 404
    assert bob.get(f"/jobs/{victim.job_id}").status_code == 404
    jobs = alice.get("/jobs", params={"limit": 100}).json()
    assert {job["id"] for job in jobs["jobs"]} == {victim.job_id, victim.builtin_job_id}
    assert SECRET not in server.log()
