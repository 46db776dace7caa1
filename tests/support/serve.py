"""A real ``qrt serve`` for tests: a subprocess on 127.0.0.1 with a free port and a temp data dir.

Usage::

    from support.serve import running_server  # tests/ is on sys.path under pytest

    def test_something(tmp_path):
        with running_server(tmp_path, users=("alice", "bob")) as server:
            server.url            # http://127.0.0.1:PORT
            server.api_url        # .../api       (the account URL for channel ibm_quantum)
            server.runtime_url    # .../runtime
            server.token          # alice's API token (server.tokens["bob"] for bob's)
            with server.client() as http:   # httpx.Client on the runtime base, logged in as alice
                http.get("/programs")
            server.restart()      # same data dir and port

Users are created with the real ``users create`` command on the data dir before the server starts.
The server runs in its own process group; leaving the ``with`` always stops it (SIGTERM, then
SIGKILL of the group after a grace period), including the job processes it started.
``server.log()`` returns the server's output, which is also appended to any startup error.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["ServerHandle", "qrt_command", "run_qrt", "running_server"]

_LISTENING = re.compile(r"listening on (https?://[^\s]+)")
_STOP_GRACE = 15.0


@functools.cache
def qrt_command() -> tuple[str, ...]:
    """How to invoke the qrt CLI: the main ``qrt`` entry point once it has ``serve``, else the
    server's own click group (the same commands)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    probe = subprocess.run(
        [sys.executable, "-m", "qrt_apply", "serve", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if probe.returncode == 0 and "--data-dir" in probe.stdout:
        return (sys.executable, "-m", "qrt_apply")
    return (sys.executable, "-m", "qrt_apply.server.cli")


def run_qrt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one qrt command in a subprocess and capture its output."""
    return subprocess.run(
        [*qrt_command(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def create_user(data_dir: Path, name: str) -> str:
    """``qrt users create NAME --data-dir D``; returns the token it printed."""
    done = run_qrt("users", "create", name, "--data-dir", str(data_dir))
    if done.returncode != 0:
        raise RuntimeError(f"users create {name} failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def _free_client(**kwargs: Any) -> httpx.Client:
    # trust_env=False: never route loopback requests through a proxy from the environment
    return httpx.Client(trust_env=False, timeout=30.0, **kwargs)


@dataclass
class ServerHandle:
    data_dir: Path
    log_path: Path
    tokens: dict[str, str]
    workers: int = 2
    extra_args: tuple[str, ...] = ()
    url: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def runtime_url(self) -> str:
        return f"{self.url}/runtime"

    @property
    def token(self) -> str:
        return next(iter(self.tokens.values()))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def add_user(self, name: str) -> str:
        self.tokens[name] = create_user(self.data_dir, name)
        return self.tokens[name]

    def login(self, user: str | None = None) -> str:
        """An access token for ``user`` (default: the first user) via loginWithToken."""
        token = self.tokens[user] if user else self.token
        with _free_client() as http:
            answer = http.post(f"{self.api_url}/users/loginWithToken", json={"apiToken": token})
            answer.raise_for_status()
            return str(answer.json()["id"])

    def client(self, user: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on the runtime base URL, logged in as ``user``."""
        headers = {"X-Access-Token": self.login(user), **kwargs.pop("headers", {})}
        return _free_client(base_url=self.runtime_url, headers=headers, **kwargs)

    # -- process control -------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        assert self.process is None, "already running"
        self._log_file = self.log_path.open("ab")
        command = [
            *qrt_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--workers",
            str(self.workers),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() can reach job children too
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        offset = len(self.log())
        while not self.url or self.port == 0:
            match = _LISTENING.search(self.log()[offset:])
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                break
            self._check_alive(deadline)
            time.sleep(0.05)
        with _free_client() as http:
            while True:
                try:
                    if http.get(f"{self.url}/api/version").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                self._check_alive(deadline)
                time.sleep(0.05)

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"qrt serve exited with {self.process.returncode} during startup:\n{self.log()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"qrt serve did not become ready in time:\n{self.log()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    _kill_group(process.pid)
                    process.wait(timeout=_STOP_GRACE)
            _kill_group(process.pid)  # job processes left behind, if any
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self, timeout: float = 90.0) -> None:
        """Stop and start again on the same data dir and port."""
        self.stop()
        self.start(timeout)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def running_server(
    base_dir: Path | None = None,
    *,
    users: Sequence[str] = ("alice",),
    workers: int = 2,
    extra_args: Sequence[str] = (),
    timeout: float = 90.0,
) -> Iterator[ServerHandle]:
    """Start ``qrt serve`` with a fresh data dir under ``base_dir`` (a temp dir if None) and the
    given users; yield its handle; always stop it."""
    with _tempdir(base_dir) as root:
        data_dir = root / "server-data"
        handle = ServerHandle(
            data_dir=data_dir,
            log_path=root / "server.log",
            tokens={},
            workers=workers,
            extra_args=tuple(extra_args),
        )
        for name in users:
            handle.add_user(name)
        try:
            handle.start(timeout)
            yield handle
        finally:
            handle.stop()


@contextmanager
def _tempdir(base_dir: Path | None) -> Iterator[Path]:
    if base_dir is not None:
        base_dir.mkdir(parents=True, exist_ok=True)
        yield base_dir
        return
    with tempfile.TemporaryDirectory(prefix="qrt-serve-") as name:
        yield Path(name)
