"""The example repository on an IBM Quantum Platform target, played by a real ``qrt serve`` (its v1
API, IAM endpoint and instance CRNs) on loopback, through the real CLI: Program documents are
refused at plan with their file and line and nothing is sent; the built-in batches converge, with the
same results as on the embedded runtime; a ``session: batch`` batch runs in one closed session."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.iqp import IqpRuntime

from projects import BELL, copy_example, qrt, write
from support.serve import ServerHandle, run_qrt, running_server

pytestmark = pytest.mark.slow

PRIMITIVE_BATCHES = ("--target", "batch.bell", "--target", "batch.energy", "--target", "batch.pair")
PAIR = """
apiVersion: qrt/v1
kind: JobBatch
name: pair
program: sampler
backend: aer_simulator
session: batch
options: {default_shots: 200, seed_simulator: 7}
jobs:
  - name: pair-${n}
    matrix: {n: [1, 2]}
    inputs:
      pubs:
        - circuit: {$file: ../circuits/bell.qasm}
"""


def instance_of(server: ServerHandle) -> str:
    done = run_qrt("users", "list", "--json", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    return str(row["instance"])


def energy(lock: dict) -> float:
    result = lock["jobs"]["job.energy/real-amplitudes"]["result"]
    return float(result["results"][0]["data"]["evs"])


def test_example_on_the_platform_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_example(tmp_path / "repo")
    write(root, "manifests/pair.yaml", PAIR)
    with running_server(tmp_path / "server") as server, httpx.Client(trust_env=False) as client:
        monkeypatch.setenv("IAM_URL", server.url)  # as for the official client
        url = f"{server.url}/experimental/api/v1"
        crn = instance_of(server)
        saved = qrt(
            root,
            *("account", "save", "--name", "platform", "--channel", "ibm_quantum_platform"),
            *("--url", url, "--instance", crn, "--token", "-"),
            stdin=server.token + "\n",
        )
        assert saved.returncode == 0, saved.stdout + saved.stderr
        platform = IqpRuntime(
            Account("ibm_quantum_platform", server.token, url=url, instance=crn),
            client=client,
            environ={"IAM_URL": server.url},
        )

        refused = qrt(root, "--account", "platform", "plan")
        assert refused.returncode == 1
        assert refused.stderr.startswith("Error: manifests/programs.yaml:2: Program 'ghz-sweep': ")
        assert "has no program upload" in refused.stderr and "Traceback" not in refused.stderr
        assert not (root / "qrt.lock").exists() and platform.jobs(limit=None) == []

        done = qrt(root, "--account", "platform", "apply", "--auto-approve", *PRIMITIVE_BATCHES)
        assert done.returncode == 0, done.stdout + done.stderr
        text = (root / "qrt.lock").read_text()
        assert server.token not in text + done.stdout + done.stderr
        lock = json.loads(text)
        assert lock["target"] == {"channel": "ibm_quantum_platform", "url": url, "instance": crn}
        jobs = lock["jobs"]
        assert sorted(jobs) == [
            "job.bell/bell",
            "job.bell/bell-100",
            "job.bell/bell-1000",
            "job.energy/real-amplitudes",
            "job.pair/pair-1",
            "job.pair/pair-2",
        ]
        assert {r["status"] for r in jobs.values()} == {"COMPLETED"}
        for address, shots in (("bell", 4000), ("bell-100", 100), ("bell-1000", 1000)):
            counts = jobs[f"job.bell/{address}"]["result"]["results"][0]["data"]["c"]["counts"]
            assert set(counts) <= {"00", "11"} and sum(counts.values()) == shots

        # one batch-mode session for the pair, closed once both jobs were in
        sessions = {jobs[f"job.pair/pair-{n}"]["session_id"] for n in (1, 2)}
        [session] = sessions
        assert session and all(jobs[a].get("session_id") is None for a in jobs if "pair" not in a)
        with pytest.raises(Exception, match="HTTP 4"):
            platform.run(
                "sampler",
                {"pubs": [{"circuit": BELL}]},
                backend="aer_simulator",
                session_id=session,
            )

        again = qrt(
            root, "--account", "platform", "plan", "--detailed-exitcode", *PRIMITIVE_BATCHES
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(platform.jobs(limit=None)) == 6  # nothing was submitted twice

    # the same batches on the embedded runtime give the same energy (within the precision)
    local = copy_example(tmp_path / "local")
    done = qrt(local, "apply", "--auto-approve", "--target", "batch.energy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert abs(energy(json.loads((local / "qrt.lock").read_text())) - energy(lock)) < 0.1
