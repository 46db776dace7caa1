"""``qrt serve`` over real HTTP (httpx against a real server process on 127.0.0.1): auth, isolation
between users, the error shape, Content-Type independence, the body limit, programs, jobs, listing
filters, idempotent submission, sessions, cancel, backends."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.serve import ServerHandle, running_server

ECHO = """
def main(backend, user_messenger, **kwargs):
    for i in range(kwargs.get("n", 0)):
        user_messenger.publish({"step": i})
    print("echo ran")
    return kwargs
"""

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    print("sleeping", flush=True)
    time.sleep(kwargs.get("sleep", 30))
    return "woke up"
"""

FINAL = ("COMPLETED", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("serve-http")
    with running_server(base, users=("alice", "bob"), extra_args=("--max-body-mb", "1")) as handle:
        yield handle


@pytest.fixture(scope="module")
def alice(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client("alice") as http:
        yield http


@pytest.fixture(scope="module")
def bob(server: ServerHandle) -> Iterator[httpx.Client]:
    with server.client("bob") as http:
        yield http


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def upload(http: httpx.Client, name: str, source: str = ECHO, **extra: Any) -> str:
    body = {"name": name, "data": b64(source), "cost": 60, "description": "t", **extra}
    answer = http.post("/programs", content=json.dumps(body))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def submit(http: httpx.Client, program_id: str, params: Any = None, **extra: Any) -> dict[str, Any]:
    body = {"program_id": program_id, "params": params or {}, **extra}
    answer = http.post("/jobs", content=json.dumps(body))
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def wait_final(http: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["state"]["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']['status']}"
        time.sleep(0.05)


def assert_error(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["code"] == status


# -- auth ---------------------------------------------------------------------------------------


def test_login_flow_gives_a_distinct_access_token_and_urls_of_this_server(
    server: ServerHandle,
) -> None:
    with httpx.Client(trust_env=False) as http:
        version = http.get(f"{server.api_url}/version")
        assert version.status_code == 200 and "api-auth" in version.json()
        login = http.post(
            f"{server.api_url}/users/loginWithToken",
            content=json.dumps({"apiToken": server.tokens["alice"]}),
        ).json()
        assert set(login) >= {"id", "ttl", "created", "userId"}
        assert login["id"] != server.tokens["alice"]
        me = http.get(f"{server.api_url}/users/me", headers={"X-Access-Token": login["id"]})
        assert me.json()["urls"] == {
            "http": server.api_url,
            "services": {"runtime": server.runtime_url},
        }
        network = http.get(f"{server.api_url}/Network", headers={"X-Access-Token": login["id"]})
        hub = network.json()[0]
        assert hub["name"] == "ibm-q" and list(hub["groups"]["open"]["projects"]) == ["main"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/runtime/programs"),
        ("POST", "/runtime/programs"),
        ("GET", "/runtime/jobs"),
        ("POST", "/runtime/jobs"),
        ("GET", "/runtime/jobs/abc/results"),
        ("GET", "/runtime/backends"),
        ("DELETE", "/runtime/sessions/abc/close"),
        ("GET", "/api/users/me"),
        ("GET", "/api/Network"),
    ],
)
def test_requests_without_a_valid_token_get_401(
    server: ServerHandle, method: str, path: str
) -> None:
    url = server.url + path
    with httpx.Client(trust_env=False) as http:
        assert_error(http.request(method, url), 401)
        assert_error(http.request(method, url, headers={"X-Access-Token": "not-a-token"}), 401)
        # an API token is not an access token
        assert_error(http.request(method, url, headers={"X-Access-Token": server.token}), 401)
        assert_error(http.request(method, url, headers={"Authorization": "Bearer x"}), 401)


def test_login_with_a_bad_api_token_is_401_and_never_echoes_it(server: ServerHandle) -> None:
    with httpx.Client(trust_env=False) as http:
        answer = http.post(
            f"{server.api_url}/users/loginWithToken", json={"apiToken": "secret-guess-123"}
        )
        assert_error(answer, 401)
        assert "secret-guess-123" not in answer.text
        assert_error(http.post(f"{server.api_url}/users/loginWithToken", json={}), 400)


def test_apikey_header_works_on_the_experimental_base(server: ServerHandle) -> None:
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/abc:def::"
    with httpx.Client(trust_env=False) as http:
        good = {"Authorization": f"apikey {server.token}", "Service-CRN": crn}
        answer = http.get(f"{server.url}/experimental/backends", headers=good)
        assert answer.status_code == 200 and "aer_simulator" in answer.json()["devices"]
        assert http.get(f"{server.url}/runtime/programs", headers=good).status_code == 200
        bad = {"Authorization": "apikey nope", "Service-CRN": crn}
        assert_error(http.get(f"{server.url}/experimental/backends", headers=bad), 401)


# -- isolation ----------------------------------------------------------------------------------


def test_a_second_user_cannot_see_or_run_a_private_program_nor_read_its_jobs(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    program = upload(alice, "alice-private")
    job = submit(alice, program, {"n": 1})["id"]
    wait_final(alice, job)

    assert_error(bob.get(f"/programs/{program}"), 404)
    assert program not in [p["id"] for p in bob.get("/programs").json()["programs"]]
    assert_error(bob.post("/jobs", json={"program_id": program, "params": {}}), 404)
    assert_error(bob.put(f"/programs/{program}/data", content=b64(ECHO)), 404)
    assert_error(bob.patch(f"/programs/{program}", json={"description": "mine"}), 404)
    assert_error(bob.put(f"/programs/{program}/public"), 404)
    assert_error(bob.delete(f"/programs/{program}"), 404)
    for suffix in ("", "/results", "/interim_results", "/logs", "/metrics"):
        assert_error(bob.get(f"/jobs/{job}{suffix}"), 404)
    assert_error(bob.post(f"/jobs/{job}/cancel"), 404)
    assert_error(bob.put(f"/jobs/{job}/tags", json={"tags": ["x"]}), 404)
    assert_error(bob.delete(f"/jobs/{job}"), 404)
    assert job not in [j["id"] for j in bob.get("/jobs").json()["jobs"]]

    # public: bob may read (without the source) and run it, but not change it or see alice's jobs
    assert alice.put(f"/programs/{program}/public").status_code == 204
    seen = bob.get(f"/programs/{program}").json()
    assert seen["is_public"] is True and "data" not in seen
    bobs_job = submit(bob, program, {"n": 0})["id"]
    assert wait_final(bob, bobs_job)["state"]["status"] == "COMPLETED"
    assert_error(alice.get(f"/jobs/{bobs_job}"), 404)
    assert_error(bob.get(f"/jobs/{job}"), 404)
    assert bob.patch(f"/programs/{program}", json={"description": "mine"}).status_code == 403
    assert bob.delete(f"/programs/{program}").status_code == 403
    assert alice.get(f"/programs/{program}").json()["data"] == ECHO


# -- wire details --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/programs", b"{not json", 400),
        ("POST", "/programs", b"[1, 2]", 400),
        ("POST", "/programs", b"", 400),
        ("POST", "/programs", b'{"name": "x", "data": "!!!", "cost": 5}', 400),
        ("POST", "/programs", b'{"name": "x", "data": "/w==", "cost": 5}', 400),
        ("POST", "/programs", b'{"name": "x", "data": "ZGVmIG1haW4oKTogcGFzcw=="}', 400),
        ("POST", "/programs", b'{"name": "", "data": "ZGVm", "cost": 5}', 400),
        ("POST", "/programs", b'{"name": "x", "data": "ZGVm", "cost": "soon"}', 400),
        ("POST", "/jobs", b'{"params": {}}', 400),
        ("POST", "/jobs", b'{"program_id": "sampler", "params": [1]}', 400),
        ("POST", "/jobs", b'{"program_id": "sampler", "params": {}, "backend": "nope"}', 400),
        ("POST", "/jobs", b'{"program_id": "sampler", "params": {}, "tags": "x"}', 400),
        ("POST", "/jobs", b'{"program_id": "sampler", "params": {}, "cost": -1}', 400),
        ("POST", "/jobs", b'{"program_id": "sampler", "params": {}, "log_level": "LOUD"}', 400),
        ("POST", "/jobs", b'{"program_id": "no-such-program", "params": {}}', 404),
        ("GET", "/jobs?limit=abc", b"", 400),
        ("GET", "/jobs?pending=maybe", b"", 400),
        ("GET", "/jobs?sort=UP", b"", 400),
        ("GET", "/jobs?created_after=yesterday", b"", 400),
        ("GET", "/programs?offset=-1", b"", 400),
        ("GET", "/jobs/nope", b"", 404),
        ("GET", "/programs/nope", b"", 404),
        ("GET", "/no/such/route", b"", 404),
        ("PATCH", "/jobs", b"{}", 405),
        ("PUT", "/jobs/nope/tags", b'{"tags": "x"}', 400),
        ("GET", "/backends/nope/configuration", b"", 404),
        ("DELETE", "/sessions/nope/close", b"", 404),
    ],
)
def test_errors_are_4xx_with_the_error_shape(
    alice: httpx.Client, method: str, path: str, content: bytes, status: int
) -> None:
    assert_error(alice.request(method, path, content=content), status)


@pytest.mark.parametrize(
    "content_type",
    [None, "application/octet-stream", "text/plain", "application/x-www-form-urlencoded"],
)
def test_json_bodies_are_parsed_whatever_the_content_type(
    alice: httpx.Client, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    name = f"ct-{(content_type or 'none').replace('/', '-')}"
    body = {"name": name, "data": b64(ECHO), "cost": 30, "description": "ct"}
    created = alice.post("/programs", content=json.dumps(body), headers=headers)
    assert created.status_code == 201, created.text
    program = created.json()["id"]
    patch = json.dumps({"description": "patched", "cost": 40})
    assert alice.patch(f"/programs/{program}", content=patch, headers=headers).status_code == 204
    job = alice.post(
        "/jobs", content=json.dumps({"program_id": program, "params": {"n": 0}}), headers=headers
    )
    assert job.status_code == 201, job.text
    tags = json.dumps({"tags": ["ct"]})
    assert (
        alice.put(f"/jobs/{job.json()['id']}/tags", content=tags, headers=headers).status_code
        == 204
    )
    got = alice.get(f"/programs/{program}").json()
    assert (got["description"], got["cost"]) == ("patched", 40)


def test_request_bodies_over_the_limit_get_413(alice: httpx.Client) -> None:
    big = json.dumps({"name": "big", "data": "A" * (1024 * 1024 + 10), "cost": 5})
    assert_error(alice.post("/programs", content=big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(40):
            yield b" " * 65536

    assert_error(alice.post("/programs", content=chunks()), 413)
    assert alice.get("/programs").status_code == 200


# -- programs ------------------------------------------------------------------------------------


def test_program_upload_get_update_list_and_delete(alice: httpx.Client) -> None:
    spec = {"parameters": {"properties": {"n": {"type": "integer"}}, "required": ["n"]}}
    program = upload(alice, "crud", spec=spec, is_public=False)
    got = alice.get(f"/programs/{program}").json()
    assert got["data"] == ECHO and got["spec"] == spec and got["cost"] == 60
    assert {"creation_date", "update_date", "is_public", "description", "name"} <= set(got)

    duplicate = {"name": "crud", "data": b64(ECHO), "cost": 60, "description": "again"}
    assert_error(alice.post("/programs", content=json.dumps(duplicate)), 409)

    new_source = ECHO + "\n# v2\n"
    put = alice.put(
        f"/programs/{program}/data",
        content=b64(new_source),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204
    assert alice.get(f"/programs/{program}").json()["data"] == new_source
    assert alice.put(f"/programs/{program}/data", content=json.dumps(b64(ECHO))).status_code == 204
    assert alice.get(f"/programs/{program}").json()["data"] == ECHO

    patch = {"name": "crud-renamed", "description": "new", "cost": 90, "spec": {"x": {}}}
    assert alice.patch(f"/programs/{program}", json=patch).status_code == 204
    got = alice.get(f"/programs/{program}").json()
    assert (got["name"], got["description"], got["cost"], got["spec"]) == (
        "crud-renamed",
        "new",
        90,
        {"x": {}},
    )
    assert alice.put(f"/programs/{program}/public").status_code == 204
    assert alice.get(f"/programs/{program}").json()["is_public"] is True
    assert alice.put(f"/programs/{program}/private").status_code == 204
    assert alice.get(f"/programs/{program}").json()["is_public"] is False

    assert alice.delete(f"/programs/{program}").status_code == 204
    assert_error(alice.get(f"/programs/{program}"), 404)
    assert_error(alice.delete(f"/programs/{program}"), 404)


def test_program_list_pages_with_count(server: ServerHandle) -> None:
    server.add_user("pager")
    with server.client("pager") as http:
        public = http.get("/programs").json()["count"]  # other users' public programs come first
        ids = [upload(http, f"page-{i}") for i in range(5)]
        first = http.get("/programs", params={"limit": 2, "offset": public}).json()
        assert first["count"] == public + 5
        assert [p["id"] for p in first["programs"]] == ids[:2]
        assert all("data" not in p for p in first["programs"])
        rest = http.get("/programs", params={"limit": 20, "offset": public + 2}).json()
        assert [p["id"] for p in rest["programs"]] == ids[2:]


# -- jobs ----------------------------------------------------------------------------------------


def test_job_results_interim_newest_first_logs_metrics_tags_and_exclude_params(
    alice: httpx.Client,
) -> None:
    program = upload(alice, "echo-job")
    created = submit(alice, program, {"n": 3, "word": "hi"}, tags=["t1"])
    assert set(created) >= {"id", "backend"} and created["backend"] == "aer_simulator"
    job = wait_final(alice, created["id"])
    assert job["state"]["status"] == "COMPLETED"
    assert job["params"] == {"n": 3, "word": "hi"} and job["program"]["id"] == program
    assert "params" not in alice.get(f"/jobs/{job['id']}", params={"exclude_params": "true"}).json()

    results = alice.get(f"/jobs/{job['id']}/results")
    assert json.loads(results.text) == {"n": 3, "word": "hi"}
    interim = alice.get(f"/jobs/{job['id']}/interim_results").json()
    assert [json.loads(text) for text in interim] == [{"step": 2}, {"step": 1}, {"step": 0}]
    assert "echo ran" in alice.get(f"/jobs/{job['id']}/logs").text
    metrics = alice.get(f"/jobs/{job['id']}/metrics").json()
    assert {"timestamps", "usage", "bss"} <= set(metrics)

    tagged = alice.put(f"/jobs/{job['id']}/tags", content=json.dumps({"tags": ["a", "b"]}))
    assert tagged.status_code == 204 and tagged.content == b""
    assert alice.get(f"/jobs/{job['id']}").json()["tags"] == ["a", "b"]
    assert_error(alice.post(f"/jobs/{job['id']}/cancel"), 409)
    assert alice.delete(f"/jobs/{job['id']}").status_code == 204
    assert_error(alice.get(f"/jobs/{job['id']}"), 404)


def test_failed_job_results_are_the_traceback(alice: httpx.Client) -> None:
    program = upload(alice, "fails", "def main(backend, user_messenger, **kw):\n    1 / 0\n")
    job = wait_final(alice, submit(alice, program)["id"])
    assert job["state"]["status"] == "FAILED"
    text = alice.get(f"/jobs/{job['id']}/results").text
    assert "Traceback" in text and "ZeroDivisionError" in text


def test_job_list_filters_sort_paging_and_count(server: ServerHandle) -> None:
    server.add_user("lister")
    with server.client("lister") as http:
        a = upload(http, "list-a")
        b = upload(http, "list-b")
        j1 = submit(http, a, {"n": 0}, tags=["x"])["id"]
        j2 = submit(http, a, {"n": 0}, tags=["x", "y"], backend="fake_noisy_5q")["id"]
        j3 = submit(http, b, {"n": 0}, tags=["y"], start_session=True)["id"]
        for job in (j1, j2, j3):
            wait_final(http, job)

        def ids(**params: Any) -> list[str]:
            answer = http.get("/jobs", params=params).json()
            assert answer["count"] >= len(answer["jobs"])
            assert all("params" not in job for job in answer["jobs"])
            return [job["id"] for job in answer["jobs"]]

        assert ids() == [j3, j2, j1]
        assert ids(sort="ASC") == [j1, j2, j3]
        assert ids(program=a) == [j2, j1]
        assert ids(backend="fake_noisy_5q") == [j2]
        assert ids(tags=["x", "y"]) == [j2]
        assert ids(tags="y") == [j3, j2]
        assert ids(pending="true") == [] and ids(pending="false") == [j3, j2, j1]
        assert ids(session_id=j3) == [j3]
        assert ids(provider="other/hub/here") == []
        assert ids(provider="ibm-q/open/main") == [j3, j2, j1]
        page = http.get("/jobs", params={"limit": 1, "offset": 1}).json()
        assert page["count"] == 3 and [job["id"] for job in page["jobs"]] == [j2]
        created = {job["id"]: job["created"] for job in http.get("/jobs").json()["jobs"]}
        assert ids(created_after=created[j2]) == [j3, j2]
        assert ids(created_before=created[j2]) == [j2, j1]
        with_params = http.get("/jobs", params={"exclude_params": "false", "limit": 1}).json()
        assert with_params["jobs"][0]["params"] == {"n": 0}


def test_idempotency_key_returns_the_same_job(server: ServerHandle, alice: httpx.Client) -> None:
    program = upload(alice, "idem")
    body = json.dumps({"program_id": program, "params": {"n": 0}})
    first = alice.post("/jobs", content=body, headers={"Idempotency-Key": "k-1"})
    again = alice.post("/jobs", content=body, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert alice.get("/jobs", params={"program": program}).json()["count"] == 1
    other = json.dumps({"program_id": program, "params": {"n": 1}})
    assert_error(alice.post("/jobs", content=other, headers={"Idempotency-Key": "k-1"}), 409)
    fresh = alice.post("/jobs", content=body, headers={"Idempotency-Key": "k-2"})
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
    assert alice.get("/jobs", params={"program": program}).json()["count"] == 2


def test_sessions_start_join_and_close(alice: httpx.Client, bob: httpx.Client) -> None:
    program = upload(alice, "session-prog")
    first = submit(alice, program, {"n": 0}, start_session=True, session_time=60)
    assert first["session_id"] == first["id"]
    second = submit(alice, program, {"n": 0}, session_id=first["id"])
    assert second["session_id"] == first["id"]
    listed = alice.get("/jobs", params={"session_id": first["id"]}).json()
    assert {job["id"] for job in listed["jobs"]} == {first["id"], second["id"]}
    assert_error(bob.delete(f"/sessions/{first['id']}/close"), 404)
    assert alice.delete(f"/sessions/{first['id']}/close").status_code == 204
    late = json.dumps({"program_id": program, "params": {}, "session_id": first["id"]})
    assert_error(alice.post("/jobs", content=late), 409)
    other = submit(alice, program, {"n": 0}, start_session=True)
    patched = alice.patch(f"/sessions/{other['id']}", json={"accepting_jobs": False})
    assert patched.status_code == 204
    late = json.dumps({"program_id": program, "params": {}, "session_id": other["id"]})
    assert_error(alice.post("/jobs", content=late), 409)


def test_cancel_a_running_job(alice: httpx.Client) -> None:
    program = upload(alice, "sleeper", SLEEPER)
    job = submit(alice, program, {"sleep": 60})["id"]
    deadline = time.monotonic() + 30
    while alice.get(f"/jobs/{job}").json()["state"]["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert alice.post(f"/jobs/{job}/cancel").status_code == 204
    assert wait_final(alice, job, timeout=30)["state"]["status"] == "CANCELLED"
    assert_error(alice.post(f"/jobs/{job}/cancel"), 409)


# -- backends ------------------------------------------------------------------------------------


def test_backend_routes(alice: httpx.Client) -> None:
    devices = alice.get("/backends", params={"provider": "ibm-q/open/main"}).json()["devices"]
    assert {"aer_simulator", "ibmq_qasm_simulator"} <= set(devices) and len(devices) >= 3
    for name in devices:
        config = alice.get(f"/backends/{name}/configuration").json()
        assert {"online_date", "max_experiments", "coupling_map", "n_qubits"} <= set(config)
        assert config["backend_name"] == name
        status = alice.get(f"/backends/{name}/status").json()
        assert status["state"] is True and status["status"] == "active"
        assert alice.get(f"/backends/{name}/properties").json() == {}
        assert alice.get(f"/backends/{name}/pulse_defaults").json() == {}
    assert_error(alice.get("/backends/nope/status"), 404)


@pytest.mark.slow
def test_max_execution_time_cancels_with_ran_too_long(alice: httpx.Client) -> None:
    program = upload(alice, "too-long", SLEEPER, cost=2)
    started = time.monotonic()
    job = wait_final(alice, submit(alice, program, {"sleep": 60})["id"], timeout=60)
    assert job["state"] == {"status": "CANCELLED", "reason": "RAN TOO LONG"}
    assert time.monotonic() - started < 30
    # a run may ask for less time than the program allows, never for more
    program = upload(alice, "asks-less", SLEEPER, cost=30)
    job = wait_final(alice, submit(alice, program, {"sleep": 60}, cost=2)["id"], timeout=60)
    assert job["state"]["reason"] == "RAN TOO LONG"


JUNK_BODIES = [
    b"null",
    b"1",
    b'"text"',
    b"{}",
    b"\xff\xfe\x00",
    b'{"name": null, "data": 5, "cost": true}',
    b'{"program_id": 5, "params": "not json"}',
    b'{"program_id": "sampler", "params": "[1]"}',
    b'{"program_id": "sampler", "params": {}, "session_id": 7, "start_session": "yes"}',
    b'{"tags": [1, 2], "accepting_jobs": "no", "apiToken": 5}',
    b'{"description": 5, "spec": [], "cost": 1.5}',
]


def test_junk_never_gets_a_5xx(server: ServerHandle, alice: httpx.Client) -> None:
    program = upload(alice, "junk-target")
    job = submit(alice, program)["id"]
    routes = [
        ("POST", "/programs"),
        ("PATCH", f"/programs/{program}"),
        ("PUT", f"/programs/{program}/data"),
        ("POST", "/jobs"),
        ("PUT", f"/jobs/{job}/tags"),
        ("PATCH", f"/sessions/{job}"),
    ]
    with httpx.Client(trust_env=False) as raw:
        for body in JUNK_BODIES:
            for method, path in routes:
                answer = alice.request(method, path, content=body)
                assert answer.status_code < 500, (method, path, body, answer.text)
                if answer.status_code >= 400:
                    assert set(answer.json()["error"]) == {"message", "code"}
            login = raw.post(f"{server.api_url}/users/loginWithToken", content=body)
            assert 400 <= login.status_code < 500, (body, login.text)
    assert alice.get(f"/programs/{program}").status_code == 200
