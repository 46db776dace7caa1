"""Wire details of HttpRuntime against a respx router: paths, headers, bodies, paging, error mapping,
retries and the no-duplicate-job guarantee. The router is injected through ``httpx.MockTransport``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from qrt_apply.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    QrtError,
    RuntimeApiError,
    TransportError,
)
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.base import Runtime
from qrt_apply.runtime.http import SUBMIT_TAG_PREFIX, HttpRuntime
from qrt_apply.runtime.http_wire import RetryPolicy

AUTH = "http://auth.test/api"
RT = "http://rt.test/runtime"
TOKEN = "user-api-token-SECRET-0123456789"
ACCESS = "access-token-XYZ-9876543210"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/abc123:inst-1::"


def network(*hgps: tuple[str, str, str, bool]) -> list[dict[str, Any]]:
    hubs: dict[str, dict[str, Any]] = {}
    for hub, group, project, default in hgps:
        entry = hubs.setdefault(hub, {"name": hub, "groups": {}})
        projects = entry["groups"].setdefault(group, {"name": group, "projects": {}})["projects"]
        projects[project] = {"name": project, "isDefault": default}
    return list(hubs.values())


@pytest.fixture
def router() -> Iterator[respx.Router]:
    r = respx.Router(assert_all_called=False)
    r.get(f"{AUTH}/version").respond(json={"api-auth": "0.1", "new_api": True})
    r.post(f"{AUTH}/users/loginWithToken").respond(json={"id": ACCESS, "ttl": 1209600})
    r.get(f"{AUTH}/users/me").respond(
        json={"urls": {"http": AUTH, "ws": "wss://x", "services": {"runtime": RT + "/"}}}
    )
    r.get(f"{AUTH}/Network").respond(json=network(("ibm-q", "open", "main", True)))
    yield r


class Harness:
    def __init__(self, router: respx.Router, account: Account, **kwargs: Any) -> None:
        self.router = router
        self.sleeps: list[float] = []
        self.now = 0.0
        kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.5, total_time=60))
        self.rt = HttpRuntime(
            account,
            client=httpx.Client(transport=httpx.MockTransport(router.handler)),
            sleep=self.sleep,
            clock=lambda: self.now,
            **kwargs,
        )

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def requests(self) -> list[httpx.Request]:
        return [call.request for call in self.router.calls]


def quantum(instance: str | None = None) -> Account:
    return Account("ibm_quantum", TOKEN, url=AUTH, instance=instance)


@pytest.fixture
def h(router: respx.Router) -> Harness:
    return Harness(router, quantum())


def job_json(job_id: str, status: str = "Queued", **extra: Any) -> dict[str, Any]:
    body = {
        "id": job_id,
        "state": {"status": status},
        "program": {"id": "sampler"},
        "backend": "aer_simulator",
        "created": "2024-01-01T00:00:00Z",
        "tags": [],
    }
    body.update(extra)
    return body


def assert_no_secret(text: str) -> None:
    assert TOKEN not in text
    assert ACCESS not in text


# -- login and headers -----------------------------------------------------------------------------


def test_is_a_runtime_and_hides_the_token(h: Harness) -> None:
    assert isinstance(h.rt, Runtime)
    assert_no_secret(repr(h.rt))
    assert_no_secret(repr(h.rt.account))
    assert h.rt.target.to_json() == {"channel": "ibm_quantum", "url": AUTH, "instance": None}
    assert h.router.calls.call_count == 0  # target needs no network


def test_ibm_quantum_login_flow_then_access_token_on_runtime_calls(h: Harness) -> None:
    h.router.get(f"{RT}/programs").respond(json={"programs": [], "count": 0})
    assert h.rt.programs() == []
    paths = [(r.method, str(r.url).split("?")[0]) for r in h.requests()]
    assert paths == [
        ("GET", f"{AUTH}/version"),
        ("POST", f"{AUTH}/users/loginWithToken"),
        ("GET", f"{AUTH}/users/me"),
        ("GET", f"{AUTH}/Network"),
        ("GET", f"{RT}/programs"),
    ]
    login = h.requests()[1]
    assert json.loads(login.content) == {"apiToken": TOKEN}
    runtime_call = h.requests()[-1]
    assert runtime_call.headers["X-Access-Token"] == ACCESS
    assert "authorization" not in runtime_call.headers
    for request in h.requests():
        assert TOKEN not in str(request.url)
        assert ACCESS not in str(request.url)
        if request is not login:
            assert TOKEN not in json.dumps(dict(request.headers))
    # logged in once only
    h.rt.programs()
    assert len([r for r in h.requests() if r.url.path.endswith("loginWithToken")]) == 1


@pytest.mark.parametrize(
    "answer", [httpx.Response(200, json={"hello": 1}), httpx.Response(404), httpx.Response(200)]
)
def test_not_an_auth_url(router: respx.Router, answer: httpx.Response) -> None:
    router.get(f"{AUTH}/version").mock(return_value=answer)
    with pytest.raises(ConfigError, match="not an IBM Quantum authentication URL.*HOST:PORT/api"):
        Harness(router, quantum()).rt.programs()


def test_instance_must_be_on_the_network(router: respx.Router) -> None:
    router.get(f"{AUTH}/Network").respond(
        json=network(("h", "g", "p1", False), ("h", "g", "p2", True))
    )
    with pytest.raises(ConfigError, match="h/g/p2, h/g/p1"):
        Harness(router, quantum("x/y/z")).rt.programs()
    router.get(f"{RT}/backends").respond(json={"devices": []})
    rt = Harness(router, quantum()).rt
    rt.backends()
    assert router.calls.last.request.url.params["provider"] == "h/g/p2"  # isDefault first


def test_bad_token_is_auth_error_without_the_token(router: respx.Router) -> None:
    router.post(f"{AUTH}/users/loginWithToken").respond(
        401, json={"error": {"message": f"token {TOKEN} is invalid", "code": 3446}}
    )
    with pytest.raises(AuthError) as info:
        Harness(router, quantum()).rt.programs()
    assert router.routes[1].call_count == 1  # a refused login is not repeated
    message = str(info.value)
    assert_no_secret(message)
    assert "POST http://auth.test/api/users/loginWithToken" in message
    assert "HTTP 401" in message and "is invalid (code 3446)" in message


def test_runtime_401_logs_in_again_once(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs/p1")
    route.side_effect = [
        httpx.Response(401, json={"error": {"message": "expired", "code": 1}}),
        httpx.Response(200, json={"id": "p1", "name": "x"}),
    ]
    assert h.rt.program("p1").name == "x"
    logins = [r for r in h.requests() if r.url.path.endswith("loginWithToken")]
    assert len(logins) == 2
    route.side_effect = None
    route.respond(401, json={"error": {"message": f"bad access {ACCESS}", "code": 1}})
    with pytest.raises(AuthError) as info:
        h.rt.program("p1")
    assert_no_secret(str(info.value))


def test_ibm_cloud_headers_and_urls(router: respx.Router) -> None:
    exp = "http://127.0.0.1:8765/experimental"
    router.get(f"{exp}/programs").respond(json={"programs": [{"id": "a", "name": "a"}], "count": 1})
    h = Harness(router, Account("ibm_cloud", TOKEN, url=exp, instance=CRN))
    assert [p.id for p in h.rt.programs()] == ["a"]
    request = h.router.calls.last.request
    assert request.headers["Authorization"] == f"apikey {TOKEN}"
    assert request.headers["Service-CRN"] == CRN
    assert h.router.calls.call_count == 1  # no login flow
    router.get("https://us-east.quantum-computing.cloud.ibm.com/programs").respond(
        json={"programs": [], "count": 0}
    )
    h2 = Harness(router, Account("ibm_cloud", TOKEN, url="https://cloud.ibm.com:443", instance=CRN))
    assert h2.rt.programs() == []
    with pytest.raises(ConfigError, match="CRN"):
        Harness(router, Account("ibm_cloud", TOKEN, url=exp, instance="my-service")).rt.programs()


# -- programs --------------------------------------------------------------------------------------


def test_programs_page_until_count(h: Harness) -> None:
    items = [{"id": f"p{i}", "name": f"n{i}"} for i in range(45)]

    def page(request: httpx.Request) -> httpx.Response:
        limit = min(int(request.url.params["limit"]), 20)  # a server that caps its pages at 20
        offset = int(request.url.params.get("offset", 0))
        return httpx.Response(200, json={"programs": items[offset : offset + limit], "count": 45})

    h.router.get(f"{RT}/programs").mock(side_effect=page)
    assert [p.id for p in h.rt.programs()] == [f"p{i}" for i in range(45)]
    queries = [dict(r.url.params) for r in h.requests() if r.url.path == "/runtime/programs"]
    assert queries == [
        {"limit": "100"},
        {"limit": "100", "offset": "20"},
        {"limit": "100", "offset": "40"},
    ]
    assert [p.id for p in h.rt.programs(limit=3, skip=43)] == ["p43", "p44"]


def test_programs_stop_on_an_empty_page_even_if_count_lies(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs")
    route.side_effect = [
        httpx.Response(200, json={"programs": [{"id": "a", "name": "a"}], "count": 99}),
        httpx.Response(200, json={"programs": [], "count": 99}),
    ]
    assert [p.id for p in h.rt.programs()] == ["a"]


def test_upload_sends_base64_data(h: Harness) -> None:
    route = h.router.post(f"{RT}/programs").respond(
        201, json={"id": "hello-abc123", "name": "hello"}
    )
    source = "def main(backend, user_messenger, **kwargs):\n    return 'héllo'\n"
    spec = {"parameters": {"type": "object"}}
    meta = {"name": "hello", "max_execution_time": 300, "description": "d", "spec": spec}
    assert h.rt.upload_program(source, meta) == "hello-abc123"
    body = json.loads(route.calls.last.request.content)
    assert base64.b64decode(body.pop("data")).decode("utf-8") == source
    assert body == {
        "name": "hello",
        "cost": 300,
        "description": "d",
        "is_public": False,
        "spec": spec,
    }


def test_duplicate_upload_is_conflict(h: Harness) -> None:
    h.router.post(f"{RT}/programs").respond(
        409, json={"error": {"message": "program hello already exists", "code": 409}}
    )
    with pytest.raises(
        ConflictError, match="POST http://rt.test/runtime/programs failed with HTTP 409"
    ):
        h.rt.upload_program("def main(): pass", {"name": "hello", "max_execution_time": 1})


def test_program_get_and_404(h: Harness) -> None:
    h.router.get(f"{RT}/programs/p1").respond(
        json={"id": "p1", "name": "x", "cost": 60, "data": "src", "is_public": True, "spec": None}
    )
    h.router.get(f"{RT}/programs/nope").respond(404, text="Not Found")
    program = h.rt.program("p1")
    assert (program.data, program.max_execution_time, program.is_public, program.spec) == (
        "src",
        60,
        True,
        {},
    )
    with pytest.raises(
        NotFoundError, match="GET http://rt.test/runtime/programs/nope .*404.*Not Found"
    ):
        h.rt.program("nope")


def test_update_program_puts_data_then_patches(h: Harness) -> None:
    put = h.router.put(f"{RT}/programs/p1/data").respond(204)
    patch = h.router.patch(f"{RT}/programs/p1").respond(204)
    h.rt.update_program("p1", "new source", description="", max_execution_time=5, spec={"a": 1})
    assert base64.b64decode(put.calls.last.request.content) == b"new source"
    assert put.calls.last.request.headers["Content-Type"] == "application/octet-stream"
    assert json.loads(patch.calls.last.request.content) == {
        "description": "",
        "cost": 5,
        "spec": {"a": 1},
    }
    order = [r.method for r in h.requests() if r.url.path.startswith("/runtime/programs/p1")]
    assert order == ["PUT", "PATCH"]
    h.rt.update_program("p1", name="renamed")
    assert json.loads(patch.calls.last.request.content) == {"name": "renamed"}
    assert put.call_count == 1
    h.rt.update_program("p1", "only data")
    assert (put.call_count, patch.call_count) == (2, 2)


def test_visibility_and_delete(h: Harness) -> None:
    public = h.router.put(f"{RT}/programs/p1/public").respond(204)
    private = h.router.put(f"{RT}/programs/p1/private").respond(204)
    h.router.delete(f"{RT}/programs/p1").respond(
        404, json={"error": {"message": "gone", "code": 4}}
    )
    h.rt.set_program_visibility("p1", True)
    h.rt.set_program_visibility("p1", False)
    assert (public.call_count, private.call_count) == (1, 1)
    assert public.calls.last.request.content == b""
    with pytest.raises(NotFoundError, match="gone"):
        h.rt.delete_program("p1")


# -- jobs ------------------------------------------------------------------------------------------


def test_run_body_and_headers(router: respx.Router) -> None:
    h = Harness(router, quantum("ibm-q/open/main"))
    post = h.router.post(f"{RT}/jobs").respond(json={"id": "job1", "backend": "aer_simulator"})
    h.router.get(f"{RT}/jobs/job1").respond(json=job_json("job1", tags=["a"]))
    job = h.rt.run(
        "sampler",
        {"shots": 10, "circuits": ["x"]},
        backend="aer_simulator",
        max_execution_time=30,
        tags=["a"],
        start_session=True,
    )
    assert (job.id, job.status, job.program_id) == ("job1", "QUEUED", "sampler")
    request = post.calls.last.request
    body = json.loads(request.content)
    [submit_tag] = [t for t in body["tags"] if t.startswith(SUBMIT_TAG_PREFIX)]
    assert body == {
        "program_id": "sampler",
        "params": {"shots": 10, "circuits": ["x"]},
        "backend": "aer_simulator",
        "cost": 30,
        "tags": ["a", submit_tag],
        "start_session": True,
        "hub": "ibm-q",
        "group": "open",
        "project": "main",
    }
    assert request.headers["Idempotency-Key"] == submit_tag[len(SUBMIT_TAG_PREFIX) :]
    assert request.headers["X-Access-Token"] == ACCESS
    last = h.router.calls.last.request
    assert (last.method, last.url.path, last.url.query) == ("GET", "/runtime/jobs/job1", b"")


def test_run_takes_a_whole_job_answer_as_is(h: Harness) -> None:
    h.router.post(f"{RT}/jobs").respond(201, json=job_json("job9", tags=["x"]))
    job = h.rt.run("sampler", {})
    assert (job.id, job.tags) == ("job9", ("x",))
    assert h.router.calls.last.request.method == "POST"


def test_run_reuses_a_callers_submit_tag(h: Harness) -> None:
    post = h.router.post(f"{RT}/jobs").respond(json={"id": "job1", "backend": "b"})
    h.router.get(f"{RT}/jobs/job1").respond(json=job_json("job1"))
    h.rt.run("p", {}, tags=[f"{SUBMIT_TAG_PREFIX}journalled", "x"], session_id="s1")
    body = json.loads(post.calls.last.request.content)
    assert body["tags"] == [f"{SUBMIT_TAG_PREFIX}journalled", "x"]
    assert body["session_id"] == "s1"
    assert post.calls.last.request.headers["Idempotency-Key"] == "journalled"


class FakeJobsServer:
    """POST /jobs and GET /jobs?tags=... over an in-memory list; ``fail`` decides each POST's fate."""

    def __init__(self, fail: Callable[[int], Exception | httpx.Response | None]) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.posts = 0
        self.fail = fail

    def post(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        outcome = self.fail(self.posts)
        if isinstance(outcome, httpx.Response):
            return outcome
        body = json.loads(request.content)
        job = job_json(f"job{len(self.jobs) + 1}", tags=body["tags"])
        self.jobs.append(job)
        if isinstance(outcome, Exception):
            raise outcome  # the server made the job, the answer was lost
        return httpx.Response(200, json={"id": job["id"], "backend": "aer_simulator"})

    def get(self, request: httpx.Request) -> httpx.Response:
        tags = request.url.params.get_list("tags")
        found = [j for j in self.jobs if all(t in j["tags"] for t in tags)]
        return httpx.Response(200, json={"jobs": found, "count": len(found)})

    def install(self, router: respx.Router) -> None:
        router.post(f"{RT}/jobs").mock(side_effect=self.post)
        router.get(f"{RT}/jobs").mock(side_effect=self.get)
        router.get(path__regex=r"^/runtime/jobs/job\d+$").mock(
            side_effect=lambda r: httpx.Response(
                200, json=next(j for j in self.jobs if r.url.path.endswith(j["id"]))
            )
        )


def test_timed_out_submission_is_adopted_not_resent(h: Harness) -> None:
    server = FakeJobsServer(lambda n: httpx.ReadTimeout("timed out") if n == 1 else None)
    server.install(h.router)
    job = h.rt.run("sampler", {"x": 1}, tags=["t"])
    assert server.posts == 1
    assert len(server.jobs) == 1
    assert job.id == "job1"
    lookups = [r for r in h.requests() if r.method == "GET" and r.url.path == "/runtime/jobs"]
    [tag] = [t for t in server.jobs[0]["tags"] if t.startswith(SUBMIT_TAG_PREFIX)]
    assert lookups[0].url.params.get_list("tags") == [tag]
    assert len(h.sleeps) == 1  # waited before looking


def test_5xx_without_a_job_is_resent_with_the_same_key(h: Harness) -> None:
    server = FakeJobsServer(lambda n: httpx.Response(503) if n == 1 else None)
    server.install(h.router)
    job = h.rt.run("sampler", {})
    assert (server.posts, len(server.jobs), job.id) == (2, 1, "job1")
    posts = [r for r in h.requests() if r.method == "POST" and r.url.path == "/runtime/jobs"]
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    assert posts[0].content == posts[1].content


def test_5xx_after_the_job_was_made_is_adopted(h: Harness) -> None:
    def fail(n: int) -> Exception | None:
        return httpx.RemoteProtocolError("connection reset") if n == 1 else None

    server = FakeJobsServer(fail)
    server.install(h.router)
    assert h.rt.run("sampler", {}).id == "job1"
    assert server.posts == 1


def test_nothing_is_resent_when_the_lookup_fails(h: Harness) -> None:
    server = FakeJobsServer(lambda n: httpx.ReadTimeout("timed out"))
    server.install(h.router)
    h.router.get(f"{RT}/jobs").respond(503)
    with pytest.raises(TransportError, match="nothing was re-sent") as info:
        h.rt.run("sampler", {})
    assert server.posts == 1
    assert_no_secret(str(info.value))


def test_jobs_query_and_paging(h: Harness) -> None:
    all_jobs = [job_json(f"j{i}", tags=["t1", "t2"]) for i in range(7)]

    def page(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params.get("offset", 0))
        chunk = all_jobs[offset : offset + min(limit, 3)]  # the server caps pages at 3
        return httpx.Response(200, json={"jobs": chunk, "count": len(all_jobs)})

    h.router.get(f"{RT}/jobs").mock(side_effect=page)
    got = h.rt.jobs(
        limit=5,
        skip=1,
        backend="aer_simulator",
        pending=False,
        program_id="sampler",
        tags=["t1", "t2"],
        session_id="s",
        descending=False,
    )
    assert [j.id for j in got] == ["j1", "j2", "j3", "j4", "j5"]
    first = h.requests()[-2].url.params
    assert first.get_list("tags") == ["t1", "t2"]
    assert dict(first) | {"tags": None} == {
        "backend": "aer_simulator",
        "pending": "false",
        "program": "sampler",
        "tags": None,
        "session_id": "s",
        "sort": "ASC",
        "limit": "5",
        "offset": "1",
    }
    assert (h.requests()[-1].url.params["limit"], h.requests()[-1].url.params["offset"]) == (
        "2",
        "4",
    )
    assert len(h.rt.jobs(limit=None)) == 7
    assert got[0].tags == ("t1", "t2")


def test_results_interim_logs_cancel_delete(h: Harness) -> None:
    h.router.get(f"{RT}/jobs/j1/results").respond(text='{"a": 1}')
    h.router.get(f"{RT}/jobs/j1/interim_results").respond(
        json=[json.dumps({"iteration": 2}), json.dumps({"iteration": 1})]
    )
    h.router.get(f"{RT}/jobs/j1/logs").respond(text="log line\n")
    h.router.post(f"{RT}/jobs/j1/cancel").respond(
        409, json={"error": {"message": "job is final", "code": 409}}
    )
    h.router.delete(f"{RT}/jobs/j1").respond(404)
    assert h.rt.job_result("j1") == '{"a": 1}'
    assert h.rt.job_interim_results("j1") == ['{"iteration": 1}', '{"iteration": 2}']
    assert h.rt.job_logs("j1") == "log line\n"
    with pytest.raises(ConflictError, match="job is final"):
        h.rt.cancel_job("j1")
    with pytest.raises(NotFoundError):
        h.rt.delete_job("j1")


def test_job_parsing(h: Harness) -> None:
    h.router.get(f"{RT}/jobs/j1").respond(
        json=job_json("j1", "cancelled", state={"status": "Cancelled", "reason": "RAN TOO LONG"})
    )
    job = h.rt.job("j1")
    assert (job.status, job.reason, job.final, job.params) == (
        "CANCELLED",
        "RAN TOO LONG",
        True,
        None,
    )
    encoded = {"x": {"__type__": "complex", "__value__": [1, 2]}}
    for wire_params in (encoded, json.dumps(encoded), [encoded]):
        h.router.get(f"{RT}/jobs/j2").respond(json=job_json("j2", params=wire_params))
        assert h.rt.job("j2").params == encoded


def test_backends(h: Harness) -> None:
    h.router.get(f"{RT}/backends").respond(json={"devices": ["aer_simulator"]})
    h.router.get(f"{RT}/backends/aer_simulator/configuration").respond(
        json={"backend_name": "aer_simulator", "n_qubits": 29, "simulator": True}
    )
    h.router.get(f"{RT}/backends/aer_simulator/status").respond(
        json={"state": True, "status": "active", "length_queue": 0, "backend_version": "1"}
    )
    [info] = h.rt.backends()
    assert (info.name, info.num_qubits, info.simulator, info.operational) == (
        "aer_simulator",
        29,
        True,
        True,
    )
    assert h.router.calls[-3].request.url.params["provider"] == "ibm-q/open/main"


# -- retries ---------------------------------------------------------------------------------------


def test_retry_on_503_then_success(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs/p1")
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(502),
        httpx.Response(200, json={"id": "p1", "name": "n"}),
    ]
    assert h.rt.program("p1").id == "p1"
    assert route.call_count == 3
    assert len(h.sleeps) == 2
    assert 0.25 <= h.sleeps[0] <= 0.5 and 0.5 <= h.sleeps[1] <= 1.0  # exponential, jittered


def test_retry_after_is_honoured(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs/p1")
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(200, json={"id": "p1", "name": "n"}),
    ]
    h.rt.program("p1")
    assert h.sleeps == [7.0, 0.0]  # a date in the past means now


def test_retries_are_bounded_by_attempts(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs/p1").respond(
        503, json={"error": {"message": "overloaded", "code": 503}}
    )
    with pytest.raises(RuntimeApiError) as info:
        h.rt.program("p1")
    assert route.call_count == 4
    assert info.value.status == 503
    assert "GET http://rt.test/runtime/programs/p1 failed with HTTP 503: overloaded" in str(
        info.value
    )
    assert "gave up after 4 attempts" in str(info.value)


def test_retries_are_bounded_by_total_time(router: respx.Router) -> None:
    h = Harness(router, quantum(), retry=RetryPolicy(max_attempts=100, total_time=10))
    route = h.router.get(f"{RT}/programs/p1").respond(429, headers={"Retry-After": "4"})
    with pytest.raises(RuntimeApiError, match="429"):
        h.rt.program("p1")
    assert h.sleeps == [4.0, 4.0]
    assert route.call_count == 3


def test_unreachable_is_transport_error(h: Harness) -> None:
    h.router.get(f"{RT}/programs/p1").mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(
        TransportError,
        match=r"GET http://rt.test/runtime/programs/p1: ConnectError: Connection refused",
    ):
        h.rt.program("p1")
    assert len(h.sleeps) == 3


def test_client_errors_are_not_retried(h: Harness) -> None:
    route = h.router.get(f"{RT}/programs/p1").respond(
        400, json={"error": {"message": "bad", "code": 400}}
    )
    with pytest.raises(RuntimeApiError, match="HTTP 400: bad"):
        h.rt.program("p1")
    assert route.call_count == 1 and h.sleeps == []


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, json={"error": {"message": f"bad token {TOKEN}", "code": 1}}),
        httpx.Response(403, text=f"forbidden for {ACCESS}"),
        httpx.Response(404, json={"error": {"message": f"{TOKEN} not found", "code": 4}}),
        httpx.Response(409, json={"error": f"{ACCESS}"}),
        httpx.Response(500, text=f"Traceback ... token={TOKEN}"),
    ],
)
def test_no_token_in_any_error(h: Harness, response: httpx.Response) -> None:
    h.router.get(f"{RT}/programs/p1").mock(return_value=response)
    with pytest.raises(QrtError) as info:
        h.rt.program("p1")
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value.args))
    assert "http://rt.test/runtime/programs/p1" in str(info.value)


def test_upload_whose_answer_was_lost_is_adopted(h: Harness) -> None:
    source = "def main(backend, user_messenger): return 1\n"
    stored: dict[str, Any] = {}

    def post(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if stored:
            return httpx.Response(409, json={"error": {"message": "duplicate", "code": 409}})
        stored.update(id="up-1", name=body["name"], data=base64.b64decode(body["data"]).decode())
        raise httpx.ReadTimeout("lost")

    h.router.post(f"{RT}/programs").mock(side_effect=post)
    h.router.get(f"{RT}/programs").mock(
        side_effect=lambda r: httpx.Response(
            200, json={"programs": [{"id": "up-1", "name": stored["name"]}], "count": 1}
        )
    )
    h.router.get(f"{RT}/programs/up-1").mock(side_effect=lambda r: httpx.Response(200, json=stored))
    assert h.rt.upload_program(source, {"name": "up", "max_execution_time": 5}) == "up-1"
    assert len([r for r in h.requests() if r.method == "POST" and "programs" in r.url.path]) == 1


def test_upload_lost_answer_with_other_source_is_resent(h: Harness) -> None:
    route = h.router.post(f"{RT}/programs")
    route.side_effect = [httpx.Response(502), httpx.Response(201, json={"id": "new"})]
    h.router.get(f"{RT}/programs").respond(
        json={"programs": [{"id": "old", "name": "up"}], "count": 1}
    )
    h.router.get(f"{RT}/programs/old").respond(json={"id": "old", "name": "up", "data": "other"})
    assert h.rt.upload_program("def main(): pass", {"name": "up", "max_execution_time": 5}) == "new"
    assert route.call_count == 2


def test_idempotent_deletes_and_cancel_after_a_lost_answer(h: Harness) -> None:
    for method, path, status, call in (
        ("DELETE", "/jobs/j1", 404, lambda: h.rt.delete_job("j1")),
        ("DELETE", "/programs/p1", 404, lambda: h.rt.delete_program("p1")),
        ("POST", "/jobs/j1/cancel", 409, lambda: h.rt.cancel_job("j1")),
    ):
        route = h.router.route(method=method, url=f"{RT}{path}")
        route.side_effect = [httpx.ReadTimeout("lost"), httpx.Response(status)]
        call()  # the second answer means the first try did it
        assert route.call_count == 2


def test_interim_results_parsing() -> None:
    from qrt_apply.runtime.http_parse import parse_interim

    assert parse_interim("") == []
    assert parse_interim('["{\\"i\\": 2}", {"i": 1}]') == ['{"i": 1}', '{"i": 2}']
    assert parse_interim('{"single": true}') == ['{"single": true}']
    assert parse_interim("not json") == ["not json"]
