"""The real qiskit-ibm-runtime 0.11.3 client against a real ``qrt serve`` on loopback.

The client lives in its own virtualenv (it needs qiskit-terra 0.25 and numpy<2): its interpreter is
``support.oldclient`` (``$QRT_OLDCLIENT_PYTHON``, else ``/tmp/oldrt/bin/python``). The scripts in ``tests/oldclient/`` run
under it as subprocesses and print JSON observations that are asserted here. Without that
interpreter the tests skip, saying how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.clients import run_client_script
from support.oldclient import require_old_python
from support.serve import ServerHandle, running_server

pytestmark = [pytest.mark.slow, pytest.mark.oldclient]

SCRIPTS = Path(__file__).parent / "oldclient"
# E = II + 2 IZ + 3 XI on RealAmplitudes(2, reps=2) at theta = [0, 1, 1, 2, 3, 5] (statevector)
EXACT_EXPECTATION = 1.5556


@pytest.fixture(scope="module")
def python() -> str:
    return require_old_python()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("serve-oldclient")
    with running_server(base, users=("flow", "sample", "cloud")) as handle:
        yield handle


def run_script(
    python: str, server: ServerHandle, script: str, user: str, url: str | None = None
) -> dict[str, Any]:
    """Run ``script URL TOKEN`` as ``user`` (URL: the program API's, unless given)."""
    args = [url or server.api_url, server.tokens[user]]
    return run_client_script(python, server, SCRIPTS / script, user, args)


def test_program_api_flow_of_the_real_client(python: str, server: ServerHandle) -> None:
    out = run_script(python, server, "program_flow.py", "flow")

    assert {"aer_simulator", "ibmq_qasm_simulator"} <= set(out["backends"])
    assert out["duplicate_error"] == "RuntimeDuplicateProgramError"
    assert out["listed"] is True and out["data_roundtrip"] is True
    assert out["parameters_required"] == ["iterations"]
    assert out["updated"] == {
        "data_v2": True,
        "description": "updated description",
        "max_execution_time": 120,
    }
    assert (out["public_after_set"], out["public_after_unset"]) == (True, False)

    assert out["program_result"] == {
        "iterations": 3,
        "doubled": [0, 2, 4, 6],
        "doubled_is_ndarray": True,
        "version": 2,  # the job ran the updated source
    }
    assert out["program_job_status"] == "DONE"
    # the real API's order: newest first, each a JSON string
    assert out["interim_results"] == [
        '{"iteration": 2}',
        '{"iteration": 1}',
        '{"iteration": 0}',
    ]
    assert out["logs"] == "ran 3 iterations\n"
    assert {"timestamps", "usage", "bss"} <= set(out["metrics_keys"])
    assert out["tags"] == ["first", "second"]

    failure = out["failure"]
    assert failure["status"] == "ERROR"
    assert "Traceback" in failure["message"] and "this program always fails" in failure["message"]

    sampler = out["sampler"]
    assert sampler["type"] == "SamplerResult" and sampler["shots"] == 1000
    assert sampler["keys"] == [0, 3] and abs(sampler["total"] - 1.0) < 1e-9

    ids = out["job_ids"]
    program_job = ids["program"]
    assert out["jobs_listed"] == sorted(ids.values())
    assert out["jobs_by_program"] == [program_job]
    assert out["jobs_pending"] == []
    assert out["jobs_order"] == {
        "desc": [ids["sampler"], ids["failing"], program_job],
        "asc": [program_job, ids["failing"], ids["sampler"]],
    }
    assert out["jobs_paged"] == [ids["failing"], program_job]
    assert out["jobs_tagged"] == [program_job]

    assert out["job_fetch"] == {
        "id": program_job,
        "status": "DONE",
        "program_id": out["program_id"],
        "backend": "ibmq_qasm_simulator",
        "inputs_iterations": 3,
        "has_creation_date": True,
    }
    assert out["deleted_job_error"] == "RuntimeJobNotFound"
    assert out["deleted_program_error"] == "RuntimeProgramNotFound"
    assert out["run_deleted_error"] == "RuntimeProgramNotFound"
    assert out["delete_deleted_error"] == "RuntimeProgramNotFound"


def test_the_documentation_sample_workflow(python: str, server: ServerHandle) -> None:
    out = run_script(python, server, "sample_workflow.py", "sample")

    sampler = out["sampler"]
    assert sampler["type"] == "SamplerResult" and sampler["program_id"] == "sampler"
    assert sampler["backend"] == "ibmq_qasm_simulator"
    quasi = {int(k): v for k, v in sampler["quasi_dist"].items()}
    assert set(quasi) == {0, 3}  # a Bell state: only 00 and 11
    assert all(abs(p - 0.5) < 0.1 for p in quasi.values())

    estimator = out["estimator"]
    assert estimator["type"] == "EstimatorResult" and estimator["program_id"] == "estimator"
    assert len(estimator["values"]) == 1
    # 4000 shots by default: the standard error is about 0.06; allow 5 of them
    assert abs(estimator["values"][0] - EXACT_EXPECTATION) < 0.3

    # both jobs in one session, whose id is the first job's
    assert out["session_id"] == out["sampler_job_id"]
    assert sampler["job_session_id"] == estimator["job_session_id"] == out["session_id"]


def test_the_ibm_cloud_channel_through_the_experimental_url(
    python: str, server: ServerHandle
) -> None:
    out = run_script(python, server, "cloud_flow.py", "cloud", url=f"{server.url}/experimental")
    assert {"aer_simulator", "ibmq_qasm_simulator"} <= set(out["backends"])
    assert out["result"] == {"echo": {"x": 5}}
    assert out["backend"] == "aer_simulator"  # chosen by the server
