"""validate and plan stay light: no qiskit, qiskit-aer, numpy, scipy, deepdiff or matplotlib is imported for
manifests without circuits, nor for circuits already checked (``.qrt/checked.json``); a new
circuit costs qiskit's parsers once, never qiskit-aer or deepdiff. Without ``.qrt/`` nothing is
remembered, and validate writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from projects import qrt, small_project

HEAVY = ("qiskit", "qiskit_aer", "numpy", "scipy", "deepdiff", "matplotlib")

PROBE = """
import json, sys
from qrt_apply.cli import cli
codes = [cli.main(args, standalone_mode=False) for args in json.loads(sys.argv[1])]
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def probe(root: Path, *commands: str) -> dict:
    """Run ``commands`` in one fresh interpreter; their exit codes and the heavy modules loaded."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            json.dumps([["-C", str(root), command] for command in commands]),
            json.dumps(HEAVY),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    report: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def without_circuits(root: Path) -> Path:
    """small_project less its sampler batch: an uploaded program and its jobs only."""
    small_project(root)
    manifest = root / "manifests" / "all.yaml"
    documents = manifest.read_text().split("---\n")
    manifest.write_text("---\n".join(d for d in documents if "program: sampler" not in d))
    return root


def test_validate_and_plan_without_circuits_import_nothing_heavy(tmp_path: Path) -> None:
    report = probe(without_circuits(tmp_path), "validate", "plan")
    assert report == {"codes": [0, 0], "heavy": []}


def test_validate_without_local_state_writes_nothing(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    assert probe(root, "validate")["codes"] == [0]
    assert not (root / ".qrt").exists()


def test_checked_circuits_are_not_parsed_again(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    (root / ".qrt").mkdir()  # local state, as any apply or embedded plan makes it
    first = probe(root, "validate")
    # a circuit never seen: qiskit's parsers, and nothing of the simulator or the plan differ
    assert first["codes"] == [0]
    assert "qiskit" in first["heavy"]
    assert "qiskit_aer" not in first["heavy"] and "deepdiff" not in first["heavy"]
    assert probe(root, "validate", "plan") == {"codes": [0, 0], "heavy": []}
    # an edited circuit is checked again (and a broken one refused)
    bell = root / "circuits" / "bell.qasm"
    bell.write_text(bell.read_text().replace("h q[0];", "hh q[0];"))
    done = qrt(root, "validate")
    assert done.returncode == 1
    assert "circuits/bell.qasm:5,0: 'hh' is not defined" in done.stderr, done.stderr
