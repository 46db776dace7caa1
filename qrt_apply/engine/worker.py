"""Warm workers for the built-in programs: long-lived processes that imported qiskit-aer once.

``sampler`` and ``estimator`` are qrt's own code over qiskit-aer, so they are trusted: a worker
is a plain child process (``python -m qrt_apply.engine.worker``) that imports qiskit, qiskit-aer
and the primitives, runs a tiny circuit so Aer is initialised, says it is ready and then runs jobs
one after another for as long as the executor lives. A job costs its own simulation, not a Python
start-up.

The wire is the worker's stdin and stdout, in frames (4-byte big-endian length + JSON):
``{"program_id", "backend", "params", "log_level"}`` in, ``{"status", "result", "metrics",
"logs"}`` out; the first frame out is ``{"ready": true}``. Whatever the job prints or logs is
captured into ``logs``; the worker's own stdout is not the wire, so a stray print cannot break it.
A job past its time, a cancelled job and a hand-over kill the worker (``WarmWorker.kill``); the
executor then starts another. A worker exits when its stdin closes (its executor is gone).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qrt_apply.engine.channel import read_frame, write_frame
from qrt_apply.engine.runners import kill_group
from qrt_apply.failures import format_failure

__all__ = ["WarmWorker", "main"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WarmWorker:
    """The executor's handle on one worker process (started at construction, ready later)."""

    def __init__(self, python: str, *, threads: int = 1) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # the worker's own stderr (not a job's output) is kept for the operator's log if it dies
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [python, "-m", "qrt_apply.engine.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,
        )
        self._ready = False
        self._last_stderr = ""

    def stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the worker process itself wrote to stderr (for the server's log)."""
        if self._stderr.closed:
            return self._last_stderr
        with contextlib.suppress(OSError, ValueError):
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - limit))
            return self._stderr.read().decode("utf-8", errors="replace")
        return ""

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _wait_frame(self, stop: Callable[[], str | None], poll: float) -> dict[str, Any] | str:
        """The next frame, or the reason to stop waiting (``stop()`` or the worker's death)."""
        out = self.proc.stdout
        assert out is not None
        while True:
            reason = stop()
            if reason is not None:
                return reason
            readable, _, _ = select.select([out], [], [], poll)
            if readable:
                frame = read_frame(out)
                return "DIED" if frame is None else frame

    def wait_ready(self, stop: Callable[[], str | None], poll: float = 0.05) -> str | None:
        """Wait until the worker has warmed up: None, or why not (``stop()`` or its death)."""
        if self._ready:
            return None
        ready = self._wait_frame(lambda: stop() if self.alive else "DIED", poll)
        if not isinstance(ready, dict) or not ready.get("ready"):
            self.kill()
            return ready if isinstance(ready, str) else "DIED"
        self._ready = True
        return None

    def run(
        self, request: dict[str, Any], stop: Callable[[], str | None], poll: float = 0.05
    ) -> dict[str, Any] | str:
        """Run one job on a ready worker: its response frame, or why it was stopped (the worker
        is then killed). ``stop`` is called between waits."""
        started = time.monotonic()
        stdin = self.proc.stdin
        assert stdin is not None and self._ready
        try:
            write_frame(stdin, request)
        except OSError:
            self.kill()
            return "DIED"
        frame = self._wait_frame(lambda: stop() if self.alive else "DIED", poll)
        if not isinstance(frame, dict):
            self.kill()
        else:
            frame.setdefault("metrics", {})["worker_seconds"] = round(time.monotonic() - started, 6)
        return frame

    def kill(self) -> None:
        kill_group(self.proc)
        if not self._stderr.closed:
            self._last_stderr = self.stderr_tail()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _count_circuits(params: dict[str, Any]) -> int:
    for key in ("pubs", "circuits"):
        value = params.get(key)
        if isinstance(value, list | tuple):
            return len(value)
    return 0


def _execute(request: dict[str, Any]) -> dict[str, Any]:
    from qrt_apply.engine import backends
    from qrt_apply.engine.primitives import execute_builtin
    from qrt_apply.runtime import encoding

    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(str(request.get("log_level") or "WARNING").upper())
    metrics: dict[str, Any] = {}
    try:
        with contextlib.redirect_stdout(logs), contextlib.redirect_stderr(logs):
            params = encoding.loads(request["params"])
            if not isinstance(params, dict):
                raise TypeError(f"job inputs must be an object, not {type(params).__name__}")
            backend = backends.canonical_name(request["backend"])
            value = execute_builtin(request["program_id"], params, backend)
            metrics["num_circuits"] = metrics["executions"] = _count_circuits(params)
            status, text = "COMPLETED", encoding.dumps(value)
    except Exception as exc:
        # The built-ins are qrt's code: the user sees what failed, not qrt's frames or paths.
        status, text = "FAILED", format_failure(exc)
        logs.write(text)
    finally:
        root.removeHandler(handler)
    qiskit = sys.modules.get("qiskit")
    metrics["qiskit_version"] = getattr(qiskit, "__version__", None)
    return {"status": status, "result": text, "metrics": metrics, "logs": logs.getvalue()}


def _warm_up() -> None:
    from qrt_apply.engine.primitives import execute_builtin

    bell = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; h q[0]; measure q[0] -> c[0];'
    execute_builtin("sampler", {"pubs": [[bell]], "options": {"default_shots": 8}}, "aer_simulator")


def main() -> int:
    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes where stderr goes, never into the wire
    with open(os.devnull, "rb") as devnull:
        os.dup2(devnull.fileno(), 0)
    _warm_up()
    write_frame(wire_out, {"ready": True})
    while (request := read_frame(wire_in)) is not None:
        write_frame(wire_out, _execute(request))
    return 0


if __name__ == "__main__":
    sys.exit(main())
