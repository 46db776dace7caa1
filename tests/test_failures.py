"""Failed jobs: a one-line reason in the apply output; the recorded error keeps the user program's
own frames only, none of qrt's, and no absolute path of the machine."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from qrt_apply.errors import RuntimeApiError
from qrt_apply.failures import failure_reason, format_failure, scrub_error, scrub_paths

from projects import qrt, write

ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@%-]+/)+")

PROGRAM = """\
class QiskitError(Exception):
    pass


QiskitError.__module__ = "qiskit.exceptions"


def helper(value):
    raise ValueError(f"bad value {value}")


def main(backend, user_messenger, value=3, chained=False):
    if chained:
        try:
            helper(value)
        except ValueError as exc:
            raise QiskitError("could not build the circuit") from exc
    helper(value)
"""


def _raise_from_program(tmp_path: Path, **kwargs) -> tuple[BaseException, str]:
    path = tmp_path / "job" / "program.py"
    path.parent.mkdir()
    path.write_text(PROGRAM)
    spec = importlib.util.spec_from_file_location("program_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main(None, None, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the point is to format whatever it raised
        return exc, str(path)
    raise AssertionError("the program did not fail")


def test_format_failure_keeps_the_program_frames_only(tmp_path: Path) -> None:
    exc, path = _raise_from_program(tmp_path)
    text = format_failure(exc, program_file=path)
    assert text.splitlines() == [
        "Traceback (most recent call last):",
        '  File "program.py", line 18, in main',
        "    helper(value)",
        '  File "program.py", line 9, in helper',
        '    raise ValueError(f"bad value {value}")',
        "ValueError: bad value 3",
    ]
    # this test's own frame (it called main) and the file's real path are gone
    assert "test_failures" not in text and str(tmp_path) not in text
    assert failure_reason(text) == "ValueError: bad value 3"


def test_format_failure_chains_and_short_type_names(tmp_path: Path) -> None:
    exc, path = _raise_from_program(tmp_path, chained=True)
    text = format_failure(exc, program_file=path)
    assert "The above exception was the direct cause" in text
    assert text.rstrip().endswith("QiskitError: could not build the circuit")
    assert "qiskit.exceptions" not in text
    assert failure_reason(text) == "QiskitError: could not build the circuit"
    # a built-in program shows no frames at all: they would all be qrt's
    assert format_failure(exc) == (
        "ValueError: bad value 3\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "QiskitError: could not build the circuit\n"
    )
    # qrt's own input errors are their message alone
    assert format_failure(RuntimeApiError("pubs[0]: bad circuit", status=400)) == (
        "pubs[0]: bad circuit\n"
    )


STORED_BY_AN_OLDER_SERVER = """\
Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/qrt_apply/engine/sandboxed.py", line 188, in main
    outcome: dict[str, Any] = {"status": "COMPLETED", "result": _run(jobdir, go, channel)}
                                                                ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/tmp/qrt-sandbox-2c6lpnal/job/program.py", line 10, in main
    helper(open("/home/alice/data/input.csv").read())
  File "/srv/venv/lib/python3.11/site-packages/numpy/core/fromnumeric.py", line 5, in helper
    raise FileNotFoundError("/home/alice/data/input.csv")
FileNotFoundError: /home/alice/data/input.csv (see http://127.0.0.1:8000/api/docs)
"""


def test_scrub_error_drops_qrt_frames_and_machine_paths() -> None:
    text = scrub_error(STORED_BY_AN_OLDER_SERVER)
    assert "qrt_apply" not in text and "sandboxed.py" not in text
    assert not ABSOLUTE.search(text), text
    assert '  File ".../program.py", line 10, in main' in text
    assert '  File "numpy/core/fromnumeric.py", line 5, in helper' in text
    assert text.splitlines()[-1] == (
        "FileNotFoundError: .../input.csv (see http://127.0.0.1:8000/api/docs)"
    )
    # only qrt frames: the header goes too
    only_qrt = (
        "Traceback (most recent call last):\n"
        '  File "/work/x/qrt_apply/engine/worker.py", line 154, in _execute\n'
        "    value = execute_builtin(request)\n"
        "qrt_apply.errors.RuntimeApiError: pubs[0]: bad\n"
    )
    assert scrub_error(only_qrt) == "qrt_apply.errors.RuntimeApiError: pubs[0]: bad\n"
    assert scrub_paths("a/b and ./c/d stay; /x/y/z goes") == "a/b and ./c/d stay; .../z goes"
    assert failure_reason("some log line\nJob process ended without a result (exit code 9).") == (
        "Job process ended without a result (exit code 9)."
    )


def test_apply_prints_the_reason_and_records_a_clean_error(tmp_path: Path) -> None:
    write(tmp_path, "qrt.yaml", "{}\n")
    write(tmp_path, "programs/fails.py", PROGRAM)
    write(
        tmp_path,
        "manifests/all.yaml",
        """
        apiVersion: qrt/v1
        kind: Program
        name: fails
        source: ../programs/fails.py
        description: Fails.
        max_execution_time: 60
        ---
        apiVersion: qrt/v1
        kind: JobBatch
        name: f
        program: fails
        jobs:
          - {name: plain, inputs: {value: 3}}
          - {name: chained, inputs: {chained: true}}
        ---
        apiVersion: qrt/v1
        kind: JobBatch
        name: exact
        program: estimator
        backend: aer_simulator
        # primitive options are the runtime's to check (IBM's differ from qrt's)
        options: {optimization_level: 7}
        jobs:
          - name: level
            inputs:
              pubs:
                - circuit: {library: ghz, num_qubits: 2}
                  observables: [[ZZ, 1]]
        """,
    )
    done = qrt(tmp_path, "apply", "--auto-approve", timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "job.f/plain: FAILED — ValueError: bad value 3\n" in out
    assert "job.f/chained: FAILED — QiskitError: could not build the circuit\n" in out
    assert "job.exact/level: FAILED — options.optimization_level must be 0, 1, 2 or 3\n" in out
    jobs = json.loads((tmp_path / "qrt.lock").read_text())["jobs"]
    errors = {address: rec["error"] for address, rec in jobs.items()}
    for address, error in errors.items():
        assert "qrt_apply" not in error and "sandboxed.py" not in error, (address, error)
        assert not ABSOLUTE.search(error), (address, error)
    assert errors["job.f/plain"].startswith("Traceback (most recent call last):\n")
    assert '  File "program.py", line 9, in helper\n' in errors["job.f/plain"]
    assert errors["job.exact/level"] == "options.optimization_level must be 0, 1, 2 or 3\n"
    shown = qrt(tmp_path, "show", "batch.f").stdout.splitlines()
    assert [line.split()[0] for line in shown] == ["job.f/chained", "job.f/plain"]
    assert shown[1].endswith("FAILED — ValueError: bad value 3")
