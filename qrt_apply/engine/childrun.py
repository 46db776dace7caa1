"""Child-process entry point of the local executor: ``python -m qrt_apply.engine.childrun JOBDIR``.

The parent (``engine/executor.py``) prepares JOBDIR and owns everything else (database, deadline,
cancellation). The channel is the directory:

* in: ``job.json`` (``job_id``, ``program_id``, ``builtin``, ``backend``, ``log_level``,
  ``parent_pid``), ``params.json`` (the inputs, RuntimeEncoder JSON), ``program.py`` (uploaded source);
* out: ``interim.jsonl`` (one JSON string per line: a published message, encoded with its encoder),
  ``result.json`` written atomically at the end: ``{"status": "COMPLETED" | "FAILED", "result": TEXT,
  "metrics": {...}}`` where TEXT is the RuntimeEncoder JSON of the return value or the traceback;
* stdout and stderr are the job's logs (the parent redirects them to a file).

A built-in (``sampler``/``estimator``) goes to ``primitives.execute_builtin``; an uploaded program's
``main(backend, user_messenger, **inputs)`` is called. The child exits by itself when its parent dies.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["UserMessenger", "main", "run_job"]


class UserMessenger:
    """What a program's ``main`` receives to publish interim results.

    Accepts the qiskit-ibm-runtime form ``publish(message, encoder=RuntimeEncoder)`` and the older
    ``publish(message, encoder, final=True)``, where the final message is the job's result (used
    when ``main`` returns None).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
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
            return
        with self._lock, self._path.open("a", encoding="utf-8") as stream:
            stream.write(
                json.dumps(text) + "\n"
            )  # one write per line: the parent reads whole lines


def _watch_parent(parent_pid: int) -> None:
    """Kill this process group when the executor process is gone (its jobs are recovered)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os.killpg(0, signal.SIGKILL)


def _load_program(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("program", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the program from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["program"] = module
    spec.loader.exec_module(module)
    return module


def _count_circuits(params: dict[str, Any]) -> int:
    for key in ("pubs", "circuits"):
        value = params.get(key)
        if isinstance(value, list | tuple):
            return len(value)
    return 0


def run_job(jobdir: Path, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Execute the job described by ``spec``; returns (result text, metrics)."""
    from qrt_apply.engine import backends
    from qrt_apply.runtime import encoding

    params = encoding.loads((jobdir / "params.json").read_text(encoding="utf-8"))
    if not isinstance(params, dict):
        raise TypeError(f"job inputs must be an object, not {type(params).__name__}")
    backend_name = backends.canonical_name(spec["backend"])
    metrics: dict[str, Any] = {}
    if spec["builtin"]:
        from qrt_apply.engine.primitives import execute_builtin

        value = execute_builtin(spec["program_id"], params, backend_name)
        metrics["num_circuits"] = metrics["executions"] = _count_circuits(params)
        text = encoding.dumps(value)
    else:
        program = _load_program(jobdir / "program.py")
        entry = getattr(program, "main", None)
        if not callable(entry):
            raise AttributeError("the program defines no main(backend, user_messenger, **kwargs)")
        messenger = UserMessenger(jobdir / "interim.jsonl")
        value = entry(backends.make_backend(backend_name), messenger, **params)
        if value is None and messenger.final_text is not None:
            text = messenger.final_text
        else:
            text = encoding.dumps(value)
    qiskit = sys.modules.get("qiskit")
    if qiskit is not None:
        metrics["qiskit_version"] = getattr(qiskit, "__version__", None)
    return text, metrics


def _write_result(jobdir: Path, outcome: dict[str, Any]) -> None:
    partial = jobdir / "result.json.partial"
    partial.write_text(json.dumps(outcome), encoding="utf-8")
    os.replace(partial, jobdir / "result.json")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m qrt_apply.engine.childrun JOBDIR", file=sys.stderr)
        return 2
    jobdir = Path(args[0])
    spec = json.loads((jobdir / "job.json").read_text(encoding="utf-8"))
    threading.Thread(target=_watch_parent, args=(spec["parent_pid"],), daemon=True).start()
    level = str(spec.get("log_level") or "WARNING").upper()
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        text, metrics = run_job(jobdir, spec)
        outcome: dict[str, Any] = {"status": "COMPLETED", "result": text, "metrics": metrics}
    except BaseException:  # a program calling sys.exit() has failed too
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        outcome = {"status": "FAILED", "result": tb, "metrics": {}}
    sys.stdout.flush()
    _write_result(jobdir, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
