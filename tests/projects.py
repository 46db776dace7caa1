"""Build project trees for tests: the repository's own example, or small hand-made ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_example(dest: Path) -> Path:
    """A copy of the example program repository (manifests, programs, circuits, qrt.yaml)."""
    for name in ("manifests", "programs", "circuits"):
        shutil.copytree(REPO / name, dest / name)
    shutil.copy(REPO / "qrt.yaml", dest / "qrt.yaml")
    return dest


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
    return path


BELL = """\
OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""

PROGRAM_SOURCE = """\
def main(backend, user_messenger, iterations, label="x"):
    for i in range(iterations):
        user_messenger.publish({"iteration": i})
    return {"iterations": iterations, "label": label}
"""


def small_project(root: Path) -> Path:
    """One program, one sampler batch with a matrix, one batch running the program."""
    write(root, "circuits/bell.qasm", BELL)
    write(root, "programs/echo.py", PROGRAM_SOURCE)
    write(
        root,
        "manifests/all.yaml",
        """
        apiVersion: qrt/v1
        kind: Program
        name: echo
        source: ../programs/echo.py
        description: Echoes its inputs.
        max_execution_time: 60
        spec:
          parameters:
            type: object
            properties:
              iterations: {type: integer, minimum: 1}
              label: {type: string}
            required: [iterations]
        ---
        apiVersion: qrt/v1
        kind: JobBatch
        name: bell
        program: sampler
        backend: aer_simulator
        options: {default_shots: 100}
        jobs:
          - name: plain
            inputs:
              pubs:
                - circuit: {$file: ../circuits/bell.qasm}
          - name: shots-${shots}
            matrix: {shots: [10, 20]}
            inputs:
              pubs:
                - circuit: {$file: ../circuits/bell.qasm}
                  shots: "${shots}"
        ---
        apiVersion: qrt/v1
        kind: JobBatch
        name: echoes
        program: echo
        session: true
        jobs:
          - name: one
            inputs: {iterations: 1}
          - name: two
            inputs: {iterations: 2, label: two}
        """,
    )
    return root


def qrt(
    root: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process on project ``root``, isolated from the user's accounts,
    with ``env`` added to its environment."""
    child_env = {**os.environ, "HOME": str(root / "home")}
    for key in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_URL", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE"):
        child_env.pop(key, None)
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "qrt_apply", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        input=stdin,
        check=False,
    )
