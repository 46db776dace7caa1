"""The example repository converged over HTTP against a real `qrt serve`, as the README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from projects import copy_example, qrt
from support.serve import running_server

pytestmark = pytest.mark.slow


def test_apply_converges_over_http_and_lockfile_keeps_its_target(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    with running_server(tmp_path / "server") as server:
        saved = qrt(
            root,
            "account",
            "save",
            "--name",
            "local",
            "--channel",
            "ibm_quantum",
            "--url",
            server.api_url,
            "--token",
            "-",
            stdin=server.token + "\n",
        )
        assert saved.returncode == 0, saved.stdout + saved.stderr
        account_file = (root / "home" / ".qiskit" / "qiskit-ibm.json").read_text()
        assert json.loads(account_file)["local"]["url"] == server.api_url

        done = qrt(root, "--account", "local", "apply", "--auto-approve")
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.token not in done.stdout + done.stderr
        text = (root / "qrt.lock").read_text()
        assert server.token not in text
        lock = json.loads(text)
        # the account as configured: channel and url, no instance given, never the token
        assert lock["target"] == {"channel": "ibm_quantum", "url": server.api_url, "instance": None}
        assert {r["status"] for r in lock["jobs"].values()} == {"COMPLETED"}
        counts = lock["jobs"]["job.bell/bell"]["result"]["results"][0]["data"]["c"]["counts"]
        assert set(counts) == {"00", "11"}
        assert [r["num_qubits"] for r in lock["jobs"]["job.ghz/sweep"]["interim_results"]] == [
            2,
            3,
            4,
        ]

        again = qrt(root, "--account", "local", "plan", "--detailed-exitcode")
        assert again.returncode == 0, again.stdout + again.stderr

        # The same lockfile is refused against another target (the embedded runtime here).
        other = qrt(root, "plan")
        assert other.returncode == 1
        assert "belongs to target ibm_quantum" in other.stderr
