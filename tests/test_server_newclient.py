"""The real, current qiskit-ibm-runtime client (0.51.0) against a real ``qrt serve`` on loopback,
over IBM Quantum Platform's v1 API, configured exactly as docs/serve.md shows.

The client lives in its own virtualenv (``make .venv-newclient/.installed``): its interpreter is
``support.newclient`` (``$QRT_NEWCLIENT_PYTHON``, else this checkout's ``.venv-newclient``). The
scripts in ``tests/newclient/`` run under it as subprocesses and print JSON observations that are
asserted here. Without that interpreter the tests skip, saying how to install it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.clients import run_client_script
from support.newclient import require_new_python
from support.serve import ServerHandle, run_qrt, running_server

pytestmark = [pytest.mark.slow, pytest.mark.newclient]

SCRIPTS = Path(__file__).parent / "newclient"
SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def python() -> str:
    return require_new_python()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("serve-newclient")
    # One worker, so that a held job keeps every later one queued (the cancel test); plain child
    # processes for the test's own sleeper program, wherever the sandbox cannot start.
    with running_server(
        base, users=("flow", "noisy", "holder"), workers=1, extra_args=("--unsafe-no-sandbox",)
    ) as handle:
        yield handle


def instances(server: ServerHandle) -> dict[str, str]:
    """Each user's instance CRN, as ``qrt users list --json`` shows it."""
    done = run_qrt("users", "list", "--json", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    return {row["name"]: row["instance"] for row in json.loads(done.stdout)}


def run_script(
    python: str, server: ServerHandle, script: str, user: str, last: str
) -> dict[str, Any]:
    """Run ``script URL TOKEN CRN LAST`` as ``user`` (LAST: a backend name, or another CRN)."""
    args = [server.url, server.tokens[user], instances(server)[user], last]
    env = {
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        # the configuration of docs/serve.md
        "IAM_URL": server.url,
        "GLOBAL_SEARCH_URL": server.url,
        "GLOBAL_CATALOG_URL": f"{server.url}/catalog/api/v1",
    }
    drop = ("QISKIT_", "PYTHON", "VIRTUAL_ENV", "IAM_", "GLOBAL_")
    return run_client_script(python, server, SCRIPTS / script, user, args, drop_env=drop, env=env)


def test_flow_on_the_noiseless_simulator(python: str, server: ServerHandle) -> None:
    out = run_script(python, server, "flow.py", "flow", "aer_simulator")

    assert out["backends"] == ["aer_simulator", "fake_noisy_5q", "ibmq_qasm_simulator"]
    assert out["instances"] == [instances(server)["flow"]]
    assert out["found_backends"] == out["backends"]
    assert out["backend"] == {"name": "aer_simulator", "num_qubits": 24}
    sampled = out["sampler"]
    assert set(sampled["counts"]) <= {"00", "11"} and sum(sampled["counts"].values()) == 200
    assert min(sampled["counts"].values()) > 50  # a fair coin over 200 shots, far from the tails
    assert sampled["status"] == "DONE"
    assert out["registers_agree"] is True  # two registers of one GHZ state, compared shot by shot
    # <ZZ> of a Bell state is exactly 1; the estimator adds noise of its default precision 1/64
    assert abs(out["estimator"]["zz"] - 1.0) < 0.1

    batch = out["batch"]
    assert batch["same_session"] is True and batch["mode"] == "batch"
    assert set(batch["counts"]) <= {"00", "11"} and sum(batch["counts"].values()) == 50
    assert batch["status_after"] == "Closed"
    session = out["session"]
    assert session["same_session"] is True and session["mode"] == "dedicated"
    assert set(session["counts"]) <= {"00", "11"} and abs(session["zz"] - 1.0) < 0.1

    sweep = out["sweep"]  # RY(0), RY(pi), RY(pi/2) on |0>
    assert [round(v) for v in sweep["evs"][:2]] == [1, -1] and abs(sweep["evs"][2]) < 0.1
    assert sweep["shape"] == [3]
    assert sweep["counts"][0] == {"0": 100} and sweep["counts"][1] == {"1": 100}
    assert sum(sweep["counts"][2].values()) == 100 and len(sweep["counts"][2]) == 2

    assert len(out["jobs"]) == 5 and out["jobs_total"] == 8 and out["jobs_by_program"] == 3
    assert out["job"] == {
        "status": "DONE",
        "counts": sampled["counts"],
        "primitive_id": "sampler",
        "backend": "aer_simulator",
        "metrics_keys": out["job"]["metrics_keys"],
        "logs_type": "str",
    }
    assert {"timestamps", "usage"} <= set(out["job"]["metrics_keys"])


def test_flow_on_the_noisy_device(python: str, server: ServerHandle) -> None:
    out = run_script(python, server, "flow.py", "noisy", "fake_noisy_5q")

    assert out["backend"] == {"name": "fake_noisy_5q", "num_qubits": 5}
    counts = out["sampler"]["counts"]
    assert sum(counts.values()) == 200
    assert counts.get("00", 0) + counts.get("11", 0) > 160  # mostly Bell outcomes despite noise
    assert 0.7 < out["estimator"]["zz"] <= 1.0
    assert out["batch"]["same_session"] is True and out["session"]["same_session"] is True
    assert out["jobs_total"] == 8  # this user's jobs only, not the other flow's


def test_cancel_delete_and_session_cancel_of_queued_jobs(python: str, server: ServerHandle) -> None:
    with server.client("holder") as http:
        source = base64.b64encode(SLEEPER.encode()).decode()
        program = http.post(
            "/programs",
            json={"name": "holder", "data": source, "cost": 900, "description": "holds"},
        )
        assert program.status_code == 201, program.text
        held = http.post("/jobs", json={"program_id": program.json()["id"], "params": {}})
        assert held.status_code == 201, held.text
        held_id = held.json()["id"]
        deadline = time.monotonic() + 120
        while http.get(f"/jobs/{held_id}").json()["state"]["status"] != "RUNNING":
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.1)
        try:  # the only worker runs the sleeper: the client's job stays queued until cancelled
            out = run_script(python, server, "cancel_flow.py", "holder", "aer_simulator")
        finally:
            assert http.post(f"/jobs/{held_id}/cancel").status_code == 204

    assert out == {
        "before": "QUEUED",
        "after": "CANCELLED",
        "second_cancel": "RuntimeInvalidStateError",
        "listed": True,
        "after_delete": "RuntimeJobNotFound",
        "listed_after_delete": False,
        "session_job_before": "QUEUED",
        "session_status_queued": "In progress, accepting new jobs",
        "session_status_closing": "In progress, not accepting new jobs",
        "session_job_after": "CANCELLED",
        "session_status": "Closed",
    }


def test_the_client_refuses_another_users_instance(python: str, server: ServerHandle) -> None:
    crns = instances(server)
    out = run_script(python, server, "other_instance.py", "noisy", crns["flow"])
    assert out["error"] == "IBMInputValueError"  # flow's CRN is not among noisy's instances
