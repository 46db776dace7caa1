"""validate and plan stay light: no qiskit, qiskit-aer, numpy, scipy, deepdiff or matplotlib is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from projects import small_project

HEAVY = ("qiskit", "qiskit_aer", "numpy", "scipy", "deepdiff", "matplotlib")

PROBE = """
import json, sys
from qrt_apply.cli import cli
codes = [cli.main(args, standalone_mode=False) for args in json.loads(sys.argv[1])]
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_validate_and_plan_import_nothing_heavy(tmp_path: Path) -> None:
    root = small_project(tmp_path)
    commands = [["-C", str(root), "validate"], ["-C", str(root), "plan"]]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert report["heavy"] == []
