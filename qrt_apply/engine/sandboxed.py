"""What runs inside a sandbox: ``python -m qrt_apply.engine.sandboxed JOBDIR CONFIG``.

Trusted code until the program is loaded. In order:

1. resource limits (``CONFIG``: JSON ``{"limits": {...}, "uid": int | null, "out_fd": int}``),
   then, when the server runs as root, the drop to the sandbox's own unprivileged uid (``uid``), so
   that the process limit counts this sandbox alone and nothing of the host is readable by owner;
2. the warm-up: qiskit, qiskit-aer and the runtime encoding are imported before any job exists;
3. it blocks on stdin for the job's one-line "go" (JSON: ``backend``, ``log_level``,
   ``cpu_seconds``, ``program`` (the source), ``params`` (RuntimeEncoder JSON));
4. it sends a ``started`` frame — the executor starts the job's ``max_execution_time`` clock
   then, so the start-up above is never on the job's clock — caps the CPU time, writes the source
   to ``JOBDIR/program.py``, loads it and calls ``main(backend, user_messenger, **inputs)``;
5. out, as frames (``channel.py``) on the descriptor ``out_fd``: ``{"interim": TEXT}`` per
   published message, then ``{"result": {"status": COMPLETED | FAILED, "result": TEXT,
   "metrics": {...}}}``. stdout and stderr are the job's logs.

Nothing is read back from the job directory (in a sandbox, an in-memory ``/job``), so whatever the
program leaves there — symlinks, FIFOs, many files — concerns nobody but itself. The process exits
after one job; the executor destroys the whole sandbox (its pid namespace) then.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from qrt_apply.failures import format_failure

__all__ = ["Channel", "UserMessenger", "apply_limits", "main"]

# name in CONFIG["limits"] -> (rlimit, bytes per unit)
_LIMITS = {
    "memory_mb": (resource.RLIMIT_AS, 1 << 20),
    "processes": (resource.RLIMIT_NPROC, 1),
    "open_files": (resource.RLIMIT_NOFILE, 1),
    "file_size_mb": (resource.RLIMIT_FSIZE, 1 << 20),
}


class Channel:
    """The frames this process sends to the executor (thread-safe)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        from qrt_apply.engine.channel import encode_frame

        data = encode_frame(message)
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]


class UserMessenger:
    """What a program's ``main`` receives to publish interim results.

    Accepts the qiskit-ibm-runtime form ``publish(message, encoder=RuntimeEncoder)`` and the older
    ``publish(message, encoder, final=True)``, where the final message is the job's result (used
    when ``main`` returns None).
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self.final_text: str | None = None

    def publish(
        self, message: Any, encoder: type[json.JSONEncoder] | None = None, final: bool = False
    ) -> None:
        if encoder is None:
            from qrt_apply.runtime.encoding import RuntimeEncoder

            encoder = RuntimeEncoder
        text = json.dumps(message, cls=encoder)
        if final:
            self.final_text = text
        else:
            self._channel.send({"interim": text})


def apply_limits(limits: dict[str, int], uid: int | None) -> None:
    """Set hard and soft rlimits, then (root only) become ``uid``: nothing can raise them again."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in limits.items():
        kind, unit = _LIMITS[name]
        resource.setrlimit(kind, (value * unit, value * unit))
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - a kernel that ignored us
            raise SystemExit("the sandbox could not drop root")


def _cap_cpu(seconds: int) -> None:
    """CPU time from now on: ``seconds`` more (SIGXCPU at the soft limit, SIGKILL 1 s later)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, used + seconds + 1))


def _end_with_stdin() -> None:
    """End the sandbox when the executor closes stdin or dies (the pipe's only writer). Inside a
    sandbox this process's exit ends its init and so its whole pid namespace; the group kill is
    for the unsafe mode."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    with contextlib.suppress(OSError):
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def _warm_up() -> None:
    import qiskit  # noqa: F401  (imported for its start-up cost, before any job)
    import qiskit_aer  # noqa: F401

    from qrt_apply.engine import backends
    from qrt_apply.runtime import encoding  # noqa: F401

    backends.make_backend(backends.DEFAULT_BACKEND)


def _load_program(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("program", path)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load the program")
    module = importlib.util.module_from_spec(spec)
    sys.modules["program"] = module
    spec.loader.exec_module(module)
    return module


def _run(jobdir: Path, go: dict[str, Any], channel: Channel) -> str:
    from qrt_apply.engine import backends
    from qrt_apply.runtime import encoding

    params = encoding.loads(go["params"])
    if not isinstance(params, dict):
        raise TypeError(f"job inputs must be an object, not {type(params).__name__}")
    backend = backends.make_backend(backends.canonical_name(go["backend"]))
    source = jobdir / "program.py"
    source.write_text(go["program"], encoding="utf-8")  # tracebacks then show its lines
    program = _load_program(source)
    entry = getattr(program, "main", None)
    if not callable(entry):
        raise AttributeError("the program defines no main(backend, user_messenger, **kwargs)")
    messenger = UserMessenger(channel)
    value = entry(backend, messenger, **params)
    if value is None and messenger.final_text is not None:
        return messenger.final_text
    return encoding.dumps(value)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m qrt_apply.engine.sandboxed JOBDIR CONFIG", file=sys.stderr)
        return 2
    jobdir, config = Path(args[0]), json.loads(args[1])
    apply_limits(config.get("limits", {}), config.get("uid"))
    channel = Channel(int(config["out_fd"]))
    _warm_up()
    line = sys.stdin.readline()
    if not line:
        return 0  # the sandbox was destroyed unused
    go = json.loads(line)
    threading.Thread(target=_end_with_stdin, daemon=True).start()
    channel.send({"started": True})
    _cap_cpu(int(go["cpu_seconds"]))
    level = str(go.get("log_level") or "WARNING").upper()
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        outcome: dict[str, Any] = {"status": "COMPLETED", "result": _run(jobdir, go, channel)}
    except BaseException as exc:  # a program calling sys.exit() has failed too
        # The program's own frames only: not this launcher's, nor the machine's paths.
        tb = format_failure(exc, program_file=str(jobdir / "program.py"))
        sys.stderr.write(tb)
        outcome = {"status": "FAILED", "result": tb}
    qiskit = sys.modules.get("qiskit")
    outcome["metrics"] = {"qiskit_version": getattr(qiskit, "__version__", None)}
    sys.stdout.flush()
    sys.stderr.flush()
    channel.send({"result": outcome})
    # no interpreter shutdown: the stdin watcher thread is still reading, and the sandbox is
    # destroyed next anyway
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
