"""Hostile input never gets a 5xx from ``qrt serve``'s IBM Quantum Platform v1 API and its login
services (a real server process on 127.0.0.1): hostile bodies, path ids and query strings on every
route, with the hostile JSON of ``test_server_fuzz``. The current client retries a 5xx even on
``POST /jobs``, so a 5xx there would also risk a duplicate job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_server_fuzz import BIG_INTS, FLOATS, FUZZ, ODD_TIMES, TEXT, body_bytes

from qrt_apply.server.app import API_V1_ROUTES
from qrt_apply.server.iam import IAM_ROUTES

from support.serve import ServerHandle, run_qrt, running_server

BELL = "OPENQASM 2.0; include 'qelib1.inc'; qreg q[2]; creg c[2]; h q[0]; measure q -> c;"
GRANT = "urn:ibm:params:oauth:grant-type:apikey"


@dataclass(frozen=True)
class Target:
    server: ServerHandle
    crn: str
    bearer: str
    job: str
    session: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("serve-v1-fuzz")
    # One worker: the few jobs hostile input may legitimately create are cancelled at once.
    with running_server(base, users=("alice",), workers=1, extra_args=("--max-body-mb", "1")) as s:
        listed = run_qrt("users", "list", "--json", "--data-dir", str(s.data_dir))
        crn = json.loads(listed.stdout)[0]["instance"]
        with httpx.Client(base_url=s.url, trust_env=False, timeout=30) as http:
            form = {"grant_type": GRANT, "apikey": s.token}
            bearer = http.post("/identity/token", data=form).json()["access_token"]
            headers = {"Authorization": f"Bearer {bearer}", "Service-CRN": crn}
            session = http.post(
                "/api/v1/sessions",
                json={"mode": "batch", "backend": "aer_simulator"},
                headers=headers,
            ).json()["id"]
            job = http.post("/api/v1/jobs", json=job_body(), headers=headers).json()["id"]
        yield Target(s, crn, bearer, job, session)


def job_body() -> dict[str, Any]:
    return {
        "program_id": "sampler",
        "backend": "aer_simulator",
        "params": {"pubs": [[BELL, None, 8]], "version": 2, "support_qiskit": True},
        "tags": ["fuzz"],
        "log_level": "WARNING",
    }


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with {job_id}, {session_id}, {name} or {plan_id}
    body: dict[str, Any] | None = None  # the template of a valid body (None: reads none)
    form: bool = False


ROUTES = [
    Route("GET", "/api/v1/backends"),
    Route("GET", "/api/v1/backends/{name}/configuration"),
    Route("GET", "/api/v1/backends/{name}/status"),
    Route("GET", "/api/v1/backends/{name}/properties"),
    Route("GET", "/api/v1/backends/{name}/defaults"),
    Route("GET", "/api/v1/instances/usage"),
    Route("GET", "/api/v1/jobs"),
    Route("POST", "/api/v1/jobs", job_body()),
    Route("GET", "/api/v1/jobs/{job_id}"),
    Route("DELETE", "/api/v1/jobs/{job_id}"),
    Route("GET", "/api/v1/jobs/{job_id}/results"),
    Route("GET", "/api/v1/jobs/{job_id}/logs"),
    Route("GET", "/api/v1/jobs/{job_id}/metrics"),
    Route("POST", "/api/v1/jobs/{job_id}/cancel"),
    Route("PUT", "/api/v1/jobs/{job_id}/tags", {"tags": ["a", "b"]}),
    Route("POST", "/api/v1/sessions", {"mode": "batch", "backend": "aer_simulator", "max_ttl": 60}),
    Route("GET", "/api/v1/sessions/{session_id}"),
    Route("PATCH", "/api/v1/sessions/{session_id}", {"accepting_jobs": False}),
    Route("DELETE", "/api/v1/sessions/{session_id}/close"),
    Route("POST", "/identity/token", {"grant_type": GRANT, "apikey": "x"}, form=True),
    Route("POST", "/v3/resources/search", {"query": "service_name:quantum-computing"}),
    Route("GET", "/catalog/api/v1/{plan_id}"),
]


def test_the_fuzzed_routes_are_every_route_of_the_v1_api() -> None:
    declared = {(m, "/api/v1" + r.path) for r in API_V1_ROUTES for m in r.methods or ()}
    declared |= {(m, r.path) for r in IAM_ROUTES for m in r.methods or ()}
    assert {(route.method, route.path) for route in ROUTES} == declared - {
        (m, p) for m, p in declared if m == "HEAD"
    }


def q(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def path_for(t: Target, route: Route) -> st.SearchStrategy[str]:
    """The route's path: its ids mostly real (so the body is what gets refused), else hostile;
    always hostile for a DELETE, so that the fuzzing keeps its job and session."""
    hostile = st.one_of(TEXT, st.just(""), st.just(".."))
    real = {
        "{job_id}": t.job,
        "{session_id}": t.session,
        "{name}": "fake_noisy_5q",
        "{plan_id}": "qrt-serve-open",
    }
    for placeholder, value in real.items():
        if placeholder in route.path:
            ids = hostile if route.method == "DELETE" else st.one_of(st.just(value), hostile)
            return ids.map(lambda v, p=placeholder: route.path.replace(p, q(v)))
    return st.just(route.path)


def form_text(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{q(key)}={q(value)}" for key, value in pairs)


def body_for(route: Route) -> st.SearchStrategy[bytes]:
    if route.form:
        forms = st.lists(st.tuples(TEXT, TEXT), max_size=30).map(form_text).map(str.encode)
        return st.one_of(forms, body_bytes(route.body))
    return body_bytes(route.body) if route.body is not None else st.just(b"")


def check(answer: httpx.Response, sent: object) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:500], sent)


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {target.bearer}", "Service-CRN": target.crn}
    with httpx.Client(base_url=target.server.url, headers=headers, trust_env=False) as client:
        yield client


def cancel_created(http: httpx.Client, route: Route, answer: httpx.Response) -> None:
    """A hostile body may still be a valid job: cancel it, so the one worker stays free."""
    if route.path == "/api/v1/jobs" and route.method == "POST" and answer.status_code == 200:
        http.post(f"/api/v1/jobs/{answer.json()['id']}/cancel")


def test_hostile_bodies_and_path_ids_never_get_a_5xx(target: Target, http: httpx.Client) -> None:
    drawn_requests = st.sampled_from(ROUTES).flatmap(
        lambda r: st.tuples(st.just(r), path_for(target, r), body_for(r))
    )

    @settings(FUZZ, max_examples=250)
    @given(drawn_requests)
    def one(drawn: tuple[Route, str, bytes]) -> None:
        route, path, body = drawn
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if route.form else {}
        answer = http.request(route.method, path, content=body, headers=headers)
        check(answer, (route.method, path, body[:200]))
        cancel_created(http, route, answer)

    one()
    assert http.get("/api/v1/instances/usage").status_code == 200  # still serving


def test_hostile_query_strings_never_get_a_5xx(target: Target, http: httpx.Client) -> None:
    names = st.sampled_from(
        ["limit", "offset", "backend", "pending", "program", "tags", "session_id", "sort"]
        + ["created_after", "created_before", "exclude_params", "include_mocks"]
    )
    values = st.one_of(
        TEXT,
        ODD_TIMES,
        BIG_INTS.map(str),
        FLOATS.map(str),
        st.sampled_from(["-1", "1e9", "true", "maybe", "ASC", "desc", "aer_simulator"]),
    )

    @settings(FUZZ, max_examples=120)
    @given(st.lists(st.tuples(names, values), max_size=5))
    def one(pairs: list[tuple[str, str]]) -> None:
        query = form_text(pairs)
        check(http.get(f"/api/v1/jobs?{query}"), query)

    one()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": b"Bearer a.\xff\xfe.b"},
        {"Authorization": "Bearer ..."},
        {"Authorization": "Bearer"},
        {"IBM-API-Version": "\x7f\x7f"},
        {"Service-CRN": "crn:" + ":" * 500},
    ],
)
def test_hostile_headers_never_get_a_5xx(target: Target, headers: dict[str, Any]) -> None:
    with httpx.Client(base_url=target.server.url, trust_env=False) as http:
        sent = {"Authorization": f"Bearer {target.bearer}", **headers}
        for path in ("/api/v1/backends", "/api/v1/jobs", "/v3/resources/search"):
            method = "POST" if path.startswith("/v3") else "GET"
            check(http.request(method, path, headers=sent, json={}), (path, headers))
