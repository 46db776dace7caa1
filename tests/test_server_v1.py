"""``qrt serve``'s IBM Quantum Platform v1 API over real HTTP (httpx against a real server process on
127.0.0.1): the IAM, Global Search and Catalog endpoints, every ``/api/v1`` route, isolation
between two users, and 4xx (never 5xx) on garbage."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.serve import ServerHandle, run_qrt, running_server

BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'
FINAL = ("Completed", "Failed", "Cancelled")
GRANT = "urn:ibm:params:oauth:grant-type:apikey"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("serve-v1")
    with running_server(base, users=("alice", "bob")) as handle:
        yield handle


@pytest.fixture(scope="module")
def crns(server: ServerHandle) -> dict[str, str]:
    done = run_qrt("users", "list", "--json", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    return {row["name"]: row["instance"] for row in json.loads(done.stdout)}


def iam_token(server: ServerHandle, user: str) -> dict[str, Any]:
    with httpx.Client(trust_env=False) as http:
        answer = http.post(
            f"{server.url}/identity/token",
            data={"grant_type": GRANT, "apikey": server.tokens[user], "response_type": "cloud_iam"},
        )
    assert answer.status_code == 200, answer.text
    token: dict[str, Any] = answer.json()
    return token


def v1_client(server: ServerHandle, crns: dict[str, str], user: str) -> httpx.Client:
    headers = {
        "Authorization": f"Bearer {iam_token(server, user)['access_token']}",
        "Service-CRN": crns[user],
        "IBM-API-Version": "2026-04-15",
    }
    return httpx.Client(
        base_url=f"{server.url}/api/v1", headers=headers, trust_env=False, timeout=30
    )


@pytest.fixture(scope="module")
def alice(server: ServerHandle, crns: dict[str, str]) -> Iterator[httpx.Client]:
    with v1_client(server, crns, "alice") as http:
        yield http


@pytest.fixture(scope="module")
def bob(server: ServerHandle, crns: dict[str, str]) -> Iterator[httpx.Client]:
    with v1_client(server, crns, "bob") as http:
        yield http


def assert_error(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    errors = answer.json()["errors"]
    assert errors[0]["code"] == status and errors[0]["message"]


def submit(http: httpx.Client, program: str = "sampler", **extra: Any) -> dict[str, Any]:
    params = extra.pop("params", {"pubs": [[BELL, None, 64]], "version": 2})
    body = {"program_id": program, "backend": "aer_simulator", "params": params, **extra}
    answer = http.post("/jobs", json=body)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    assert set(job) == {"id", "backend", "session_id", "private"}
    return job


def wait_final(http: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}", params={"exclude_params": "true"}).json()
        if job["state"]["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


# -- login services --------------------------------------------------------------------------------


def test_iam_token_is_a_jwt_with_exp_and_iat(server: ServerHandle) -> None:
    token = iam_token(server, "alice")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    payload = claims(token["access_token"])
    assert payload["exp"] - payload["iat"] == 3600 and payload["exp"] == token["expiration"]
    assert server.tokens["alice"] not in token["access_token"]  # the API key is never echoed


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": GRANT, "apikey": "not-a-token"},
        {"grant_type": GRANT},
        {"grant_type": "password", "apikey": "x"},
        {},
        {f"field{i}": "x" for i in range(25)},  # more fields than any token request has
    ],
)
def test_iam_refuses_bad_requests(server: ServerHandle, form: dict[str, str]) -> None:
    with httpx.Client(trust_env=False) as http:
        answer = http.post(f"{server.url}/identity/token", data=form)
    assert answer.status_code == 400 and answer.json()["errorMessage"]


def test_global_search_lists_only_the_callers_instance(
    server: ServerHandle, crns: dict[str, str]
) -> None:
    assert crns["alice"] != crns["bob"] and crns["alice"].startswith("crn:v1:bluemix:public:")
    body = {"query": "service_name:quantum-computing", "fields": ["crn"]}
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        bearer = {"Authorization": f"Bearer {iam_token(server, 'bob')['access_token']}"}
        found = http.post("/v3/resources/search?limit=100", json=body, headers=bearer).json()
        assert [item["crn"] for item in found["items"]] == [crns["bob"]]
        item = found["items"][0]
        assert item["doc"]["extensions"] and item["tags"] == [] and item["name"]
        plan = http.get(f"/catalog/api/v1/{item['service_plan_unique_id']}", headers=bearer)
        assert plan.json()["metadata"]["pricing"]["type"] == "free"
        assert_error(http.get("/catalog/api/v1/other-plan", headers=bearer), 404)
        assert_error(http.post("/v3/resources/search", json=body), 401)
        forged = {"Authorization": "Bearer a.eyJqdGkiOiJub3BlIn0.", **{}}
        assert_error(http.post("/v3/resources/search", json=body, headers=forged), 401)


def test_revoking_a_user_ends_its_iam_tokens(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_server(tmp_path_factory.mktemp("serve-v1-revoke"), users=("carol",)) as server:
        token = iam_token(server, "carol")["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", trust_env=False) as http:
            assert http.get("/backends", headers=headers).status_code == 200
            revoked = run_qrt("users", "revoke", "carol", "--data-dir", str(server.data_dir))
            assert revoked.returncode == 0, revoked.stderr
            assert_error(http.get("/backends", headers=headers), 401)


# -- backends and usage ----------------------------------------------------------------------------


def test_backends_as_the_current_client_reads_them(alice: httpx.Client) -> None:
    devices = alice.get("/backends", params={"include_mocks": "True"}).json()["devices"]
    assert [d["name"] for d in devices] == ["aer_simulator", "ibmq_qasm_simulator", "fake_noisy_5q"]
    old = alice.get("/backends", headers={"IBM-API-Version": "2024-01-01"}).json()
    assert old["devices"] == ["aer_simulator", "ibmq_qasm_simulator", "fake_noisy_5q"]
    for device in devices:
        name = device["name"]
        config = alice.get(f"/backends/{name}/configuration").json()
        assert config["backend_name"] == name and config["simulator"] is False
        for gate in config["gates"]:
            assert {"name", "parameters", "qasm_def"} <= set(gate)
        status = alice.get(f"/backends/{name}/status").json()
        assert status["state"] is True and status["status"] == "active"
        assert status["length_queue"] == 0
        properties = alice.get(f"/backends/{name}/properties").json()
        assert (properties == {}) is (name != "fake_noisy_5q")
    noisy = alice.get("/backends/fake_noisy_5q/configuration").json()
    by_name = {gate["name"]: gate for gate in noisy["gates"]}
    assert by_name["cx"]["coupling_map"] == noisy["coupling_map"]
    assert by_name["rz"]["parameters"] == ["θ"] or len(by_name["rz"]["parameters"]) == 1
    assert by_name["sx"]["coupling_map"] == [[q] for q in range(5)]
    # the noisy device's calibration is the one it is simulated with (qiskit GenericBackendV2)
    calibration = alice.get("/backends/fake_noisy_5q/properties").json()
    assert calibration["backend_name"] == "fake_noisy_5q" and len(calibration["qubits"]) == 5
    for qubit in calibration["qubits"]:
        values = {nduv["name"]: nduv["value"] for nduv in qubit}
        assert values["T1"] > 0 and values["T2"] > 0 and 0 < values["readout_error"] < 0.5
    pairs = {tuple(g["qubits"]) for g in calibration["gates"] if g["gate"] == "cx"}
    assert pairs == {tuple(edge) for edge in noisy["coupling_map"]}
    cx01 = next(g for g in calibration["gates"] if g["name"] == "cx0_1")
    assert 0 < {p["name"]: p["value"] for p in cx01["parameters"]}["gate_error"] < 0.1
    assert_error(alice.get("/backends/nope/properties"), 404)
    assert_error(alice.get("/backends/nope/configuration"), 404)
    assert_error(alice.get("/backends/nope/status"), 404)


def test_instance_usage(alice: httpx.Client, crns: dict[str, str]) -> None:
    usage = alice.get("/instances/usage").json()
    assert usage["instance_id"] == crns["alice"] and usage["usage_limit_reached"] is False


def test_service_crn_of_another_user_is_refused(server: ServerHandle, crns: dict[str, str]) -> None:
    with v1_client(server, crns, "alice") as http:
        assert_error(http.get("/backends", headers={"Service-CRN": crns["bob"]}), 403)
        assert_error(http.get("/jobs", headers={"Service-CRN": "crn:v1:x:y:z:a:b::"}), 403)


def test_experimental_base_serves_the_same_api(server: ServerHandle, crns: dict[str, str]) -> None:
    with v1_client(server, crns, "alice") as http:
        answer = http.get(f"{server.url}/experimental/api/v1/instances/usage")
        assert answer.json()["instance_id"] == crns["alice"]


# -- jobs --------------------------------------------------------------------------------------------


def test_sampler_job_lifecycle(alice: httpx.Client) -> None:
    job = submit(alice, tags=["one", "two"], log_level="INFO")
    assert job["backend"] == "aer_simulator" and job["session_id"] is None
    done = wait_final(alice, job["id"])
    assert done["state"] == {"status": "Completed"} and done["status"] == "Completed"
    assert done["program"] == {"id": "sampler"} and done["tags"] == ["one", "two"]
    assert "params" not in done
    full = alice.get(f"/jobs/{job['id']}").json()
    assert full["params"]["pubs"][0][0] == BELL
    result = json.loads(alice.get(f"/jobs/{job['id']}/results").text)
    counts = result["results"][0]["data"]["c"]["counts"]
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 64
    metrics = alice.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["usage"]["status"] == "final" and metrics["timestamps"]["finished"]
    assert isinstance(alice.get(f"/jobs/{job['id']}/logs").text, str)
    assert alice.put(f"/jobs/{job['id']}/tags", json={"tags": ["three"]}).status_code == 204
    assert alice.get(f"/jobs/{job['id']}").json()["tags"] == ["three"]
    assert_error(alice.post(f"/jobs/{job['id']}/cancel"), 409)  # already final
    assert alice.delete(f"/jobs/{job['id']}").status_code == 204
    assert_error(alice.get(f"/jobs/{job['id']}"), 404)


def test_support_qiskit_results_are_a_runtime_encoder_primitive_result(alice: httpx.Client) -> None:
    sampler = submit(
        alice, params={"pubs": [[BELL, None, 32]], "version": 2, "support_qiskit": True}
    )
    estimator = submit(
        alice,
        program="estimator",
        params={
            "pubs": [[BELL, {"ZZ": 1.0}, None, None]],
            "options": {
                "simulator": {"seed_simulator": 3},
                "dynamical_decoupling": {"enable": True},
            },
            "resilience_level": 1,
            "version": 2,
            "support_qiskit": True,
        },
    )
    for job in (sampler, estimator):
        assert wait_final(alice, job["id"])["state"]["status"] == "Completed"
    from qrt_apply.runtime import encoding

    # qrt's decoder keeps the result types it does not rebuild as dicts, with the arrays decoded
    sampled = encoding.loads(alice.get(f"/jobs/{sampler['id']}/results").text)
    assert sampled["__type__"] == "PrimitiveResult"
    pub = sampled["__value__"]["pub_results"][0]
    assert pub["__type__"] == "SamplerPubResult"
    bits = pub["__value__"]["data"]["__value__"]["fields"]["c"]
    assert bits["__type__"] == "BitArray" and bits["__value__"]["num_bits"] == 2
    assert bits["__value__"]["array"].shape == (32, 1)  # one byte per shot, in shot order
    assert set(bits["__value__"]["array"].ravel().tolist()) <= {0, 3}
    estimated = encoding.loads(alice.get(f"/jobs/{estimator['id']}/results").text)
    pub = estimated["__value__"]["pub_results"][0]
    assert pub["__type__"] == "PubResult"
    evs = pub["__value__"]["data"]["__value__"]["fields"]["evs"]
    assert abs(float(evs) - 1.0) < 0.1


def test_job_listing_filters_and_exact_count(alice: httpx.Client, bob: httpx.Client) -> None:
    before = alice.get("/jobs", params={"limit": 1}).json()["count"]
    mark = f"list-{time.monotonic_ns()}"
    ids = [submit(alice, tags=[mark, f"n{i}"])["id"] for i in range(3)]
    est = submit(alice, program="estimator", tags=[mark], params={"pubs": [[BELL, "ZZ"]]})["id"]
    for job_id in [*ids, est]:
        wait_final(alice, job_id)
    page = alice.get("/jobs", params={"tags": mark, "limit": 2}).json()
    assert page["count"] == 4 and len(page["jobs"]) == 2 and page["limit"] == 2
    assert [j["id"] for j in page["jobs"]] == [est, ids[2]]  # newest first
    rest = alice.get("/jobs", params={"tags": mark, "limit": 2, "offset": 2}).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[1], ids[0]]
    ascending = alice.get("/jobs", params={"tags": mark, "sort": "ASC"}).json()
    assert [j["id"] for j in ascending["jobs"]] == [*ids, est]
    both = alice.get("/jobs", params=[("tags", mark), ("tags", "n1")]).json()
    assert [j["id"] for j in both["jobs"]] == [ids[1]]
    by_program = alice.get("/jobs", params={"tags": mark, "program": "estimator"}).json()
    assert by_program["count"] == 1
    assert (
        alice.get("/jobs", params={"tags": mark, "backend": "fake_noisy_5q"}).json()["count"] == 0
    )
    assert alice.get("/jobs", params={"tags": mark, "pending": "true"}).json()["count"] == 0
    assert alice.get("/jobs", params={"tags": mark, "pending": "false"}).json()["count"] == 4
    first = alice.get(f"/jobs/{ids[0]}").json()["created"]
    after = alice.get("/jobs", params={"tags": mark, "created_after": first}).json()
    assert after["count"] == 4
    before_first = alice.get("/jobs", params={"tags": mark, "created_before": first}).json()
    assert [j["id"] for j in before_first["jobs"]] == [ids[0]]
    assert alice.get("/jobs", params={"limit": 1}).json()["count"] == before + 4
    with_params = alice.get("/jobs", params={"tags": mark, "exclude_params": "false"}).json()
    assert all("params" in j for j in with_params["jobs"])
    assert bob.get("/jobs", params={"tags": mark}).json() == {
        "jobs": [],
        "count": 0,
        "limit": 1000,
        "offset": 0,
    }


# -- sessions ----------------------------------------------------------------------------------------


def test_session_lifecycle(alice: httpx.Client, crns: dict[str, str]) -> None:
    body = {"mode": "batch", "backend": "aer_simulator", "instance": crns["alice"], "max_ttl": 600}
    session = alice.post("/sessions", json=body).json()
    assert session["mode"] == "batch" and session["backend_name"] == "aer_simulator"
    assert session["state"] == "open" and session["accepting_jobs"] is True
    assert session["max_ttl"] == 600 and session["instance"] == crns["alice"]
    job = submit(alice, session_id=session["id"])
    assert job["session_id"] == session["id"]
    wait_final(alice, job["id"])
    listed = alice.get("/jobs", params={"session_id": session["id"]}).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    details = alice.get(f"/sessions/{session['id']}").json()
    assert details["state"] == "inactive" and details["last_job_completed"]
    closed = alice.patch(f"/sessions/{session['id']}", json={"accepting_jobs": False})
    assert closed.status_code == 204
    details = alice.get(f"/sessions/{session['id']}").json()
    assert details["state"] == "closed" and details["accepting_jobs"] is False
    late = {"program_id": "sampler", "backend": "aer_simulator", "session_id": session["id"]}
    assert_error(alice.post("/jobs", json={**late, "params": {"pubs": [[BELL]]}}), 409)
    dedicated = alice.post("/sessions", json={"mode": "dedicated", "backend": "fake_noisy_5q"})
    session_id = dedicated.json()["id"]
    assert alice.delete(f"/sessions/{session_id}/close").status_code == 204
    assert alice.get(f"/sessions/{session_id}").json()["state"] == "closed"


# -- isolation ---------------------------------------------------------------------------------------


def test_a_user_never_sees_another_users_jobs_or_sessions(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    job = submit(alice)["id"]
    session = alice.post("/sessions", json={"mode": "batch", "backend": "aer_simulator"}).json()
    for answer in (
        bob.get(f"/jobs/{job}"),
        bob.get(f"/jobs/{job}/results"),
        bob.get(f"/jobs/{job}/logs"),
        bob.get(f"/jobs/{job}/metrics"),
        bob.post(f"/jobs/{job}/cancel"),
        bob.put(f"/jobs/{job}/tags", json={"tags": ["x"]}),
        bob.delete(f"/jobs/{job}"),
        bob.get(f"/sessions/{session['id']}"),
        bob.patch(f"/sessions/{session['id']}", json={"accepting_jobs": False}),
        bob.delete(f"/sessions/{session['id']}/close"),
        bob.post(
            "/jobs",
            json={
                "program_id": "sampler",
                "backend": "aer_simulator",
                "params": {"pubs": [[BELL]]},
                "session_id": session["id"],
            },
        ),
    ):
        assert_error(answer, 404)
    assert job not in [j["id"] for j in bob.get("/jobs").json()["jobs"]]
    assert wait_final(alice, job)["state"]["status"] == "Completed"  # untouched by bob
    assert alice.get(f"/sessions/{session['id']}").json()["accepting_jobs"] is True


# -- garbage -----------------------------------------------------------------------------------------

GOOD = {"program_id": "sampler", "backend": "aer_simulator", "params": {"pubs": [[BELL]]}}
BAD_SUBMISSIONS = [
    "not json",
    "[1, 2]",
    "{" * 5000,
    json.dumps({**GOOD, "program_id": None}),
    json.dumps({**GOOD, "program_id": "my-uploaded-program"}),
    json.dumps({**GOOD, "backend": "ibm_nowhere"}),
    json.dumps({k: v for k, v in GOOD.items() if k != "backend"}),
    json.dumps({**GOOD, "params": "pubs"}),
    json.dumps({**GOOD, "params": {"pubs": []}}),
    json.dumps({**GOOD, "params": {}}),
    json.dumps({**GOOD, "tags": "x"}),
    json.dumps({**GOOD, "tags": [1]}),
    json.dumps({**GOOD, "cost": -5}),
    json.dumps({**GOOD, "cost": "long"}),
    json.dumps({**GOOD, "log_level": "LOUD"}),
    json.dumps({**GOOD, "private": "yes"}),
    json.dumps({**GOOD, "session_id": 7}),
    json.dumps({**GOOD, "session_id": "no-such-session"}),
    '{"program_id": "sampler\\ud800"}',
    # inputs the job could not run with are refused before it exists
    json.dumps({**GOOD, "params": {"pubs": [[{"__type__": "QuantumCircuit", "__value__": "AA"}]]}}),
    json.dumps({**GOOD, "params": {"pubs": [["OPENQASM 2.0; qreg q[1];"]]}}),  # measures nothing
    json.dumps({**GOOD, "params": {"pubs": [["not a circuit"]]}}),
    json.dumps({**GOOD, "params": {"pubs": [[BELL, None, 0]]}}),
    json.dumps({**GOOD, "params": {"pubs": [[BELL]], "shots": -1}}),
    json.dumps({**GOOD, "params": {"pubs": [[BELL]], "options": {"twirling": True}}}),
    json.dumps(
        {
            **GOOD,
            "params": {
                "pubs": [[BELL]],
                "support_qiskit": True,
                "options": {"simulator": {"noise_model": {}}},
            },
        }
    ),
    json.dumps({**GOOD, "program_id": "estimator", "params": {"pubs": [[BELL]]}}),
    json.dumps({**GOOD, "program_id": "estimator", "params": {"pubs": [[BELL, "ZZZ"]]}}),
    json.dumps(
        {
            **GOOD,
            "program_id": "estimator",
            "params": {"pubs": [[{"library": "real_amplitudes", "num_qubits": 2}, "ZZ"]]},
        }
    ),
    json.dumps({**GOOD, "params": {"pubs": [[{"library": "qft", "num_qubits": 30}]]}}),
]


@pytest.mark.parametrize("body", BAD_SUBMISSIONS)
def test_bad_submissions_are_4xx_and_create_nothing(alice: httpx.Client, body: str) -> None:
    before = alice.get("/jobs", params={"limit": 1}).json()["count"]
    answer = alice.post("/jobs", content=body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["errors"][0]["message"]
    assert alice.get("/jobs", params={"limit": 1}).json()["count"] == before


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/jobs", {"params": {"limit": "-1"}}),
        ("GET", "/jobs", {"params": {"limit": "ten"}}),
        ("GET", "/jobs", {"params": {"sort": "SIDEWAYS"}}),
        ("GET", "/jobs", {"params": {"pending": "maybe"}}),
        ("GET", "/jobs", {"params": {"created_after": "yesterday"}}),
        ("GET", "/jobs", {"params": {"created_before": "99999-01-01"}}),
        ("GET", "/jobs/nope", {}),
        ("GET", "/jobs/nope/results", {}),
        ("POST", "/jobs/nope/cancel", {}),
        ("DELETE", "/jobs/nope", {}),
        ("PUT", "/jobs/nope/tags", {"json": {"tags": ["a"]}}),
        ("GET", "/sessions/nope", {}),
        ("PATCH", "/sessions/nope", {"json": {"accepting_jobs": False}}),
        ("DELETE", "/sessions/nope/close", {}),
        ("POST", "/sessions", {"content": "garbage"}),
        ("POST", "/sessions", {"json": {"mode": "exclusive", "backend": "aer_simulator"}}),
        ("POST", "/sessions", {"json": {"mode": "batch"}}),
        ("POST", "/sessions", {"json": {"mode": "batch", "backend": "ibm_nowhere"}}),
        ("POST", "/sessions", {"json": {"backend": "aer_simulator", "max_ttl": 0}}),
        ("POST", "/sessions", {"json": {"backend": "aer_simulator", "instance": "crn:v1:x::"}}),
        ("PATCH", "/sessions/nope", {"content": "[]"}),
        ("GET", "/backends/../../etc/passwd/status", {}),
        ("DELETE", "/backends", {}),
    ],
)
def test_garbage_requests_are_4xx(
    alice: httpx.Client, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    answer = alice.request(method, path, **kwargs)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)


def test_tags_of_a_job_need_a_list(alice: httpx.Client) -> None:
    job = submit(alice)["id"]
    assert_error(alice.put(f"/jobs/{job}/tags", json={"tags": "x"}), 400)
    assert_error(alice.put(f"/jobs/{job}/tags", json={}), 400)
    assert_error(alice.put(f"/jobs/{job}/tags", content="nope"), 400)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}],
)
def test_requests_without_valid_credentials_are_401(
    server: ServerHandle, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=f"{server.url}/api/v1", trust_env=False) as http:
        for path in ("/backends", "/jobs", "/instances/usage", "/sessions/x"):
            assert_error(http.get(path, headers=headers), 401)
