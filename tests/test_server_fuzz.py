"""Hostile input never gets a 5xx from ``qrt serve`` (a real server process on 127.0.0.1).

Property tests (hypothesis) send every route hostile bodies, query strings, path ids and headers,
then check that the server still answers; plain regression tests pin the failures once measured:
deep nesting (RecursionError), integers >= 2^63 and out-of-range dates (OverflowError), lone
surrogates reaching SQLite (UnicodeEncodeError). The old IBM clients retry a 5xx even on
``POST /jobs``, so each of those was also a duplicate-job risk.

Bodies are written as bytes by ``dump``: httpx cannot encode a lone surrogate, and the json module
cannot write 50 000 levels of nesting, so hostile fragments (``Raw``) are spliced in as text.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qrt_apply.engine.service import MAX_ROWS, MAX_SECONDS
from qrt_apply.errors import RuntimeApiError
from qrt_apply.server.app import RUNTIME_ROUTES
from qrt_apply.server.auth import AUTH_ROUTES
from qrt_apply.server.wire import MAX_JSON_DEPTH, error_response, parse_json

from support.serve import ServerHandle, running_server

ECHO = "def main(backend, user_messenger, **kwargs):\n    return kwargs\n"

# derandomize: CI replays the same examples every run; no example database in the working tree.
# 570 requests in all (300 + 150 + 120 examples): about 5 s on two idle cores, 6 s on two busy ones.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Target:
    """The server under test and what valid requests need: a login, a program, a job and a closed
    session (a submission naming it passes every check of its body, then gets 409 and runs
    nothing)."""

    server: ServerHandle
    token: str
    access: str
    program: str
    job: str
    closed_session: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("serve-fuzz")
    # One worker: the few jobs that hostile input may legitimately create are deleted at once.
    with running_server(base, users=("alice",), workers=1, extra_args=("--max-body-mb", "1")) as s:
        with s.client() as http:
            body = {"name": "fuzz-target", "data": b64(ECHO), "cost": 60, "description": "t"}
            program = http.post("/programs", content=json.dumps(body)).json()["id"]
            submit = {"program_id": "sampler", "params": {}, "start_session": True}
            job = http.post("/jobs", content=json.dumps(submit)).json()["id"]
            assert http.delete(f"/sessions/{job}/close").status_code == 204
            access = str(http.headers["X-Access-Token"])
        yield Target(s, s.token, access, program, job, closed_session=job)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- writing hostile JSON -----------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as it is."""

    text: str


def dump(value: Any) -> str:
    """JSON text of ``value``: ASCII only (a lone surrogate becomes ``\\udXXX``, NaN stays NaN)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def deep(levels: int, kind: str = "[") -> str:
    if kind == "[":
        return "[" * levels + "]" * levels
    return '{"a":' * levels + "1" + "}" * levels


SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
TEXT = st.lists(
    st.one_of(
        st.characters(),
        SURROGATES,
        st.sampled_from(["\x00", "\u2028", "\ufeff", "\U0001f600", "/", "%", ".."]),
    ),
    max_size=12,
).map("".join)
ODD_TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01",
        "0999-12-31T23:59:59Z",
        "2024-02-30T00:00:00",
        "2024-01-01T24:00:00",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00 01:00",
        "99999-01-01",
        "2024-01-01T00:00:00.0000000001",
        "2024-06-01T12:00:00Z",
        "",
        "+",
        "1e309",
    ]
)
BIG_INTS = st.one_of(
    st.sampled_from(
        [2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**100, -1, 0, MAX_SECONDS + 1, MAX_ROWS + 1]
    ),
    st.integers(min_value=-(2**80), max_value=2**80),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 1.5]),
)
FRAGMENTS = st.one_of(
    st.builds(
        deep,
        st.sampled_from([MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 1_000, 50_000]),
        st.sampled_from(["[", "{"]),
    ).map(Raw),
    st.sampled_from(
        [
            Raw("1e999"),
            Raw("-1e999"),
            Raw("9" * 5000),  # more digits than Python converts
            Raw("NaN"),
            Raw("-Infinity"),
            Raw('"\\ud800"'),
            Raw('"\\udfff\\ud800"'),
            Raw('"\\ud83d\\ude00"'),  # a proper pair: valid text
            Raw('"\\u0000"'),
        ]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), BIG_INTS, FLOATS, TEXT, ODD_TIMES, FRAGMENTS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with each field kept, dropped or made hostile, plus unknown fields."""
    body: dict[str, Any] = {}
    for key, value in template.items():
        choice = draw(st.sampled_from(["keep", "keep", "drop", "hostile"]))
        if choice == "keep":
            body[key] = value
        elif choice == "hostile":
            body[key] = draw(VALUES)
    body.update(draw(st.dictionaries(TEXT, VALUES, max_size=2)))
    return body


def body_bytes(template: dict[str, Any] | None) -> st.SearchStrategy[bytes]:
    """A route's hostile body: half the time its valid body mutated (to get past the first
    check), else any JSON value, or bytes that are no JSON (not UTF-8, truncated, empty)."""
    anything = st.one_of(
        VALUES.map(dump).map(str.encode),
        FRAGMENTS.map(lambda raw: raw.text.encode()),
        st.binary(max_size=64),
        st.just(b""),
    )
    if template is None:
        return anything
    return st.one_of(mutated(template).map(dump).map(str.encode), anything)


# -- routes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the app declares it, under /api or /runtime
    body: str | None = None  # which valid body to mutate
    auth: bool = True


ROUTES = [
    Route("GET", "/api/version", auth=False),
    Route("POST", "/api/users/loginWithToken", "login", auth=False),
    Route("GET", "/api/users/me"),
    Route("GET", "/api/Network"),
    Route("GET", "/runtime/programs"),
    Route("POST", "/runtime/programs", "upload"),
    Route("GET", "/runtime/programs/{program_id}"),
    Route("PATCH", "/runtime/programs/{program_id}", "patch"),
    Route("DELETE", "/runtime/programs/{program_id}"),
    Route("PUT", "/runtime/programs/{program_id}/data", "data"),
    Route("PUT", "/runtime/programs/{program_id}/public"),
    Route("PUT", "/runtime/programs/{program_id}/private"),
    Route("GET", "/runtime/jobs"),
    Route("POST", "/runtime/jobs", "submit"),
    Route("GET", "/runtime/jobs/{job_id}"),
    Route("DELETE", "/runtime/jobs/{job_id}"),
    Route("GET", "/runtime/jobs/{job_id}/results"),
    Route("GET", "/runtime/jobs/{job_id}/interim_results"),
    Route("GET", "/runtime/jobs/{job_id}/logs"),
    Route("GET", "/runtime/jobs/{job_id}/metrics"),
    Route("POST", "/runtime/jobs/{job_id}/cancel"),
    Route("PUT", "/runtime/jobs/{job_id}/tags", "tags"),
    Route("GET", "/runtime/backends"),
    Route("GET", "/runtime/backends/{name}/configuration"),
    Route("GET", "/runtime/backends/{name}/status"),
    Route("GET", "/runtime/backends/{name}/properties"),
    Route("GET", "/runtime/backends/{name}/pulse_defaults"),
    Route("GET", "/runtime/backends/{name}/defaults"),
    Route("DELETE", "/runtime/sessions/{session_id}/close"),
    Route("PATCH", "/runtime/sessions/{session_id}", "session"),
]


def templates(t: Target) -> dict[str, dict[str, Any]]:
    return {
        "login": {"apiToken": t.token},
        "upload": {
            "name": "fuzzed",
            "data": b64(ECHO),
            "cost": 60,
            "description": "d",
            "spec": {"parameters": {"type": "object"}},
            "is_public": False,
        },
        "patch": {"name": "fuzz-target", "description": "d", "cost": 30, "spec": {}},
        "data": {"": b64(ECHO)},  # the route takes bare base64 text; see data_body
        "submit": {
            "program_id": t.program,
            "params": {"n": 0},
            "backend": "aer_simulator",
            "tags": ["t"],
            "cost": 30,
            "session_id": t.closed_session,
            "start_session": False,
            "session_time": 60,
            "log_level": "INFO",
        },
        "tags": {"tags": ["a", "b"]},
        "session": {"accepting_jobs": True},
    }


def path_ids(t: Target, doomed: bool) -> dict[str, st.SearchStrategy[str]]:
    """Path parameter values: mostly the real ones (so that the body is what gets refused), else
    hostile text; always hostile for a DELETE, so that the fuzzing keeps its program and job."""
    hostile = st.one_of(
        TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=8)
    )
    quoted = hostile.map(lambda raw: quote(raw, safe=""))
    real = {
        "program_id": t.program,
        "job_id": t.job,
        "session_id": t.closed_session,
        "name": "aer_simulator",
    }
    if doomed:
        return {key: quoted for key in real}
    # three branches of four give the real id
    return {
        key: st.one_of(st.just(value), st.just(value), st.just(value), quoted)
        for key, value in real.items()
    }


def request_for(t: Target, route: Route) -> st.SearchStrategy[tuple[str, bytes]]:
    """(URL path, body) of one hostile request on ``route``."""
    ids = path_ids(t, doomed=route.method == "DELETE")
    names = [key for key in ids if "{" + key + "}" in route.path]
    template = templates(t).get(route.body) if route.body else None
    if route.body == "data":
        bodies = st.one_of(
            body_bytes(None), TEXT.map(lambda s: json.dumps(s).encode("ascii")), st.just(b"AAAA")
        )
    else:
        bodies = body_bytes(template)
    values = st.fixed_dictionaries({key: ids[key] for key in names})
    return st.tuples(values.map(lambda got: route.path.format(**got)), bodies)


# -- checks ----------------------------------------------------------------------------------------


def check(answer: httpx.Response, sent: object) -> None:
    """No 5xx; every refusal is a 4xx with the server's error body."""
    assert answer.status_code < 500, (sent, answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert error["code"] == answer.status_code, (sent, answer.text[:300])
        assert isinstance(error["message"], str) and error["message"], (sent, answer.text[:300])


def clean_up(http: httpx.Client, t: Target, method: str, path: str, answer: httpx.Response) -> None:
    """A job that hostile input validly created is deleted at once, before it runs."""
    if method == "POST" and path.endswith("/jobs") and answer.status_code in (200, 201):
        gone = http.delete(f"{t.server.url}/runtime/jobs/{answer.json()['id']}")
        check(gone, "delete a fuzzed job")


def assert_still_serving(t: Target) -> None:
    assert t.server.process is not None and t.server.process.poll() is None, t.server.log()
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        assert http.get(f"{t.server.api_url}/version").status_code == 200
        login = http.post(f"{t.server.api_url}/users/loginWithToken", json={"apiToken": t.token})
        assert login.status_code == 200, login.text
        headers = {"X-Access-Token": login.json()["id"]}
        assert http.get(f"{t.server.runtime_url}/jobs/{t.job}", headers=headers).status_code == 200
    log = t.server.log()
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30.0, base_url=target.server.url) as client:
        yield client


def test_the_fuzzed_routes_are_every_route_of_the_app() -> None:
    declared = {(m, "/api" + r.path) for r in AUTH_ROUTES for m in r.methods or () if m != "HEAD"}
    declared |= {
        (m, "/runtime" + r.path) for r in RUNTIME_ROUTES for m in r.methods or () if m != "HEAD"
    }
    assert {(route.method, route.path) for route in ROUTES} == declared


def test_hostile_bodies_and_path_ids_never_get_a_5xx(target: Target, http: httpx.Client) -> None:
    auth = {"X-Access-Token": target.access}
    readers = [r for r in ROUTES if r.body is not None]
    routes = st.one_of(st.sampled_from(readers), st.sampled_from(ROUTES))  # half read a body

    @settings(FUZZ, max_examples=300)
    @given(routes.flatmap(lambda r: st.tuples(st.just(r), request_for(target, r))))
    def one(drawn: tuple[Route, tuple[str, bytes]]) -> None:
        route, (path, body) = drawn
        answer = http.request(route.method, path, content=body, headers=auth)
        check(answer, (route.method, path, body[:200]))
        clean_up(http, target, route.method, path, answer)

    one()
    assert_still_serving(target)


QUERY_VALUES = st.one_of(
    TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"true", b"no", b"ASC", b"desc", b"ibm-q/open/main", b" 5", b"1_000"]),
    st.binary(max_size=8),
)
NUMBERS = st.one_of(BIG_INTS.map(lambda n: str(n).encode()), QUERY_VALUES)
TIMES = st.one_of(ODD_TIMES.map(str.encode), QUERY_VALUES)
# The parameters the routes read, each with values of its kind, plus any other name.
QUERY_PAIR = st.one_of(
    st.tuples(st.sampled_from([b"limit", b"offset"]), NUMBERS),
    st.tuples(st.sampled_from([b"created_after", b"created_before"]), TIMES),
    st.tuples(
        st.sampled_from(
            [b"tags", b"backend", b"program", b"session_id", b"sort", b"pending", b"provider"]
            + [b"exclude_params"]
        ),
        QUERY_VALUES,
    ),
    st.tuples(QUERY_VALUES, QUERY_VALUES),
)


def query_string(pairs: list[tuple[bytes, bytes]]) -> str:
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)


def test_hostile_query_strings_never_get_a_5xx(target: Target, http: httpx.Client) -> None:
    auth = {"X-Access-Token": target.access}
    gets = [r for r in ROUTES if r.method == "GET"]
    readers = [r for r in gets if r.path in ("/runtime/jobs", "/runtime/programs")]
    routes = st.one_of(st.sampled_from(readers), st.sampled_from(gets))  # half on the lists

    @settings(FUZZ, max_examples=150)
    @given(
        routes.flatmap(lambda r: st.tuples(st.just(r), request_for(target, r))),
        st.lists(QUERY_PAIR, min_size=1, max_size=5),
    )
    def one(drawn: tuple[Route, tuple[str, bytes]], pairs: list[tuple[bytes, bytes]]) -> None:
        route, (path, _) = drawn
        url = f"{path}?{query_string(pairs)}"
        answer = http.get(url, headers=auth)
        check(answer, url)

    one()
    assert_still_serving(target)


HEADER_VALUES = st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40).map(
    lambda s: s.strip().encode("latin-1")
)


def hostile_headers(t: Target) -> st.SearchStrategy[dict[bytes, bytes]]:
    token = t.token.encode()
    credentials: st.SearchStrategy[dict[bytes, bytes]] = st.one_of(
        HEADER_VALUES.map(lambda v: {b"X-Access-Token": v}),
        st.just({b"X-Access-Token": t.access.encode()}),
        st.tuples(
            st.sampled_from([b"apikey ", b"APIKEY  ", b"Bearer ", b"", b"apikey"]),
            st.one_of(HEADER_VALUES, st.just(token)),
        ).map(lambda parts: {b"Authorization": (parts[0] + parts[1]).strip()}),
        st.just({}),
    )
    extra = st.fixed_dictionaries(
        {},
        optional={
            b"Idempotency-Key": st.one_of(HEADER_VALUES, st.just(b"k" * 300)),
            b"Content-Type": HEADER_VALUES,
            b"Service-CRN": HEADER_VALUES,
        },
    )
    return st.tuples(credentials, extra).map(lambda both: {**both[0], **both[1]})


def test_hostile_headers_never_get_a_5xx(target: Target, http: httpx.Client) -> None:
    @settings(FUZZ, max_examples=120)
    @given(
        st.sampled_from(ROUTES).flatmap(lambda r: st.tuples(st.just(r), request_for(target, r))),
        hostile_headers(target),
    )
    def one(drawn: tuple[Route, tuple[str, bytes]], headers: dict[bytes, bytes]) -> None:
        route, (path, body) = drawn
        answer = http.request(route.method, path, content=body, headers=headers)
        check(answer, (route.method, path, headers, body[:200]))
        clean_up(http, target, route.method, path, answer)

    one()
    assert_still_serving(target)


# -- regression tests of the measured failures ----------------------------------------------------


def assert_refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    error = answer.json()["error"]
    assert error["code"] == status and words in error["message"], error


def send(t: Target, http: httpx.Client, method: str, path: str, body: str) -> httpx.Response:
    """``body`` with PROGRAM, JOB and SESSION replaced by the target's ids, sent as alice."""
    for word, value in (("PROGRAM", t.program), ("JOB", t.job), ("SESSION", t.closed_session)):
        path, body = path.replace(word, value), body.replace(word, value)
    headers = {"X-Access-Token": t.access}
    return http.request(method, path, content=body.encode("ascii"), headers=headers)


JSON_ROUTES = [
    ("POST", "/api/users/loginWithToken"),
    ("POST", "/runtime/programs"),
    ("PATCH", "/runtime/programs/PROGRAM"),
    ("POST", "/runtime/jobs"),
    ("POST", "/experimental/jobs"),
    ("PUT", "/runtime/jobs/JOB/tags"),
    ("PATCH", "/runtime/sessions/SESSION"),
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES, ids=[m + p for m, p in JSON_ROUTES])
@pytest.mark.parametrize(
    "body",
    [deep(MAX_JSON_DEPTH + 1), deep(100_000, "{"), deep(5_000)],
    ids=["65-lists", "100000-objects", "5000-lists"],
)
def test_deep_nesting_is_a_400_on_every_json_route(
    target: Target, http: httpx.Client, method: str, path: str, body: str
) -> None:
    answer = send(target, http, method, path, body)
    assert_refused(answer, 400, f"nested deeper than {MAX_JSON_DEPTH} levels")


def test_deep_nesting_inside_params_given_as_text_is_a_400(
    target: Target, http: httpx.Client
) -> None:
    body = json.dumps({"program_id": "sampler", "params": '{"x": ' + deep(1_000) + "}"})
    answer = send(target, http, "POST", "/runtime/jobs", body)
    assert_refused(answer, 400, "'params' is nested deeper")


def test_nesting_within_the_bound_is_accepted(target: Target, http: httpx.Client) -> None:
    # the body, params and 62 lists: exactly MAX_JSON_DEPTH levels
    params = '{"x": ' + deep(MAX_JSON_DEPTH - 2) + "}"
    body = f'{{"program_id": "sampler", "params": {params}, "session_id": "SESSION"}}'
    answer = send(target, http, "POST", "/runtime/jobs", body)
    assert_refused(answer, 409, "is closed")  # past every check of the body, and no job made


BIG = ["9223372036854775808", "9223372036854775807", "1e300", str(MAX_SECONDS + 1)]


@pytest.mark.parametrize("number", BIG)
@pytest.mark.parametrize(
    ("method", "path", "fields"),
    [
        ("POST", "/runtime/jobs", '"program_id": "sampler", "params": {}, "cost": <N>'),
        (
            "POST",
            "/runtime/jobs",
            '"program_id": "sampler", "start_session": true, "session_time": <N>',
        ),
        ("POST", "/runtime/programs", f'"name": "big", "data": "{b64(ECHO)}", "cost": <N>'),
        ("PATCH", "/runtime/programs/PROGRAM", '"description": "d", "cost": <N>'),
    ],
    ids=["job-cost", "job-session_time", "upload-cost", "patch-cost"],
)
def test_integers_of_2_63_and_more_are_a_400(
    target: Target, http: httpx.Client, number: str, method: str, path: str, fields: str
) -> None:
    answer = send(target, http, method, path, "{" + fields.replace("<N>", number) + "}")
    assert_refused(answer, 400, f"from 1 to {MAX_SECONDS}")


@pytest.mark.parametrize("route", ["/runtime/jobs", "/runtime/programs"])
def test_a_2_63_offset_is_a_400_and_a_huge_limit_is_one_page(
    target: Target, http: httpx.Client, route: str
) -> None:
    assert_refused(send(target, http, "GET", f"{route}?offset={2**63}", ""), 400, "offset")
    answer = send(target, http, "GET", f"{route}?limit={2**63}", "")
    assert answer.status_code == 200 and answer.json()["limit"] == 1000, answer.text


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("9999-12-31T23:59:59-01:00", "out of range"),
        ("0001-01-01T00:00:00%2B01:00", "out of range"),
        ("0999-12-31T00:00:00Z", "before the year 1000"),
        ("2024-02-30", "ISO 8601"),
    ],
)
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_out_of_range_dates_are_a_400(
    target: Target, http: httpx.Client, value: str, words: str, name: str
) -> None:
    assert_refused(send(target, http, "GET", f"/runtime/jobs?{name}={value}", ""), 400, words)


def test_a_late_but_valid_date_still_filters(target: Target, http: httpx.Client) -> None:
    answer = send(target, http, "GET", "/runtime/jobs?created_after=9999-12-31T23:59%2B01:00", "")
    assert answer.status_code == 200 and answer.json()["count"] == 0, answer.text


LONE = '"\\ud800"'  # what a JSON body carries for a lone surrogate
JOB = '"program_id": "sampler", "session_id": "SESSION"'  # closed: nothing would run
UPLOAD = f'"data": "{b64(ECHO)}", "cost": 5'


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/users/loginWithToken", f'{{"apiToken": {LONE}}}'),
        ("POST", "/runtime/jobs", f'{{"program_id": {LONE}, "session_id": "SESSION"}}'),
        ("POST", "/runtime/jobs", f'{{{JOB}, "tags": ["ok", {LONE}]}}'),
        ("POST", "/runtime/jobs", f'{{{JOB}, "backend": {LONE}}}'),
        ("POST", "/runtime/jobs", f'{{"program_id": "sampler", "session_id": {LONE}}}'),
        ("POST", "/runtime/jobs", f'{{{JOB}, "params": {{"x": ["\\udfff"]}}}}'),
        ("POST", "/runtime/jobs", f'{{{JOB}, "params": "{{\\"x\\": \\"\\ud800\\"}}"}}'),
        ("POST", "/runtime/programs", f'{{{UPLOAD}, "name": {LONE}}}'),
        ("POST", "/runtime/programs", f'{{{UPLOAD}, "name": "s", "description": {LONE}}}'),
        ("POST", "/runtime/programs", f'{{{UPLOAD}, "name": "s", "spec": {{{LONE}: 1}}}}'),
        ("PATCH", "/runtime/programs/PROGRAM", f'{{"name": {LONE}}}'),
        ("PUT", "/runtime/programs/PROGRAM/data", LONE),
        ("PUT", "/runtime/jobs/JOB/tags", f'{{"tags": [{LONE}]}}'),
    ],
    ids=[
        "login-apiToken",
        "job-program_id",
        "job-tags",
        "job-backend",
        "job-session_id",
        "job-params",
        "job-params-as-text",
        "upload-name",
        "upload-description",
        "upload-spec-key",
        "patch-name",
        "data-json-string",
        "tags",
    ],
)
def test_lone_surrogates_are_a_400(
    target: Target, http: httpx.Client, method: str, path: str, body: str
) -> None:
    assert_refused(send(target, http, method, path, body), 400, "surrogate")


def test_a_surrogate_pair_is_text_and_kept(target: Target, http: httpx.Client) -> None:
    body = f'{{"name": "regression-pair", {UPLOAD}, "description": "\\ud83d\\ude00"}}'
    created = send(target, http, "POST", "/runtime/programs", body)
    assert created.status_code == 201, created.text
    got = send(target, http, "GET", f"/runtime/programs/{created.json()['id']}", "")
    assert got.json()["description"] == "\U0001f600"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"spec": {"x": math.nan}}, "NaN"),
        ({"spec": {"x": [math.inf]}}, "NaN"),
        ({"name": "a\x00b"}, "NUL"),
        ({"data": b64("x = 1\x00")}, "NUL"),
    ],
    ids=["spec-nan", "spec-inf", "name-nul", "source-nul"],
)
def test_program_fields_no_json_answer_or_file_could_carry_are_a_400(
    target: Target, http: httpx.Client, fields: dict[str, Any], words: str
) -> None:
    body = json.dumps({"name": "regression-odd", "data": b64(ECHO), "cost": 5, **fields})
    assert_refused(send(target, http, "POST", "/runtime/programs", body), 400, words)


# -- the bounded reader itself --------------------------------------------------------------------


def alternating(levels: int) -> str:
    """``[{"a": [{"a": ... 1 ...}]}]``: lists and objects in turn, ``levels`` deep."""
    opens = "".join("[" if level % 2 == 0 else '{"a": ' for level in range(levels))
    closes = "".join("]" if level % 2 == 0 else "}" for level in reversed(range(levels)))
    return opens + "1" + closes


def test_parse_json_bounds_depth_and_refuses_lone_surrogates() -> None:
    assert parse_json(deep(MAX_JSON_DEPTH)) is not None
    assert parse_json(alternating(MAX_JSON_DEPTH)) is not None
    assert parse_json(json.dumps(["[" * 1000, "{" * 1000])) is not None  # brackets in strings
    assert parse_json('{"k": "\\ud83d\\ude00"}') == {"k": "\U0001f600"}  # a proper pair
    assert parse_json('["\\\\ud800"]') == ["\\ud800"]  # an escaped backslash, then text
    assert parse_json("[NaN, 1e999]")[1] == math.inf  # numbers are range-checked where used
    for bad, words in [
        (deep(MAX_JSON_DEPTH + 1), "nested deeper"),
        (deep(MAX_JSON_DEPTH + 1, "{"), "nested deeper"),
        (alternating(MAX_JSON_DEPTH + 1), "nested deeper"),
        (deep(200_000), "nested deeper"),
        ("[" * 5_000, "nested deeper"),  # no JSON, but deep enough to exhaust the C parser
        ('{"\\udc00": 1}', "surrogate"),
        ('[1, {"a": ["\\ud800"]}]', "surrogate"),
        ('["\\ud800\\ud800"]', "surrogate"),
        ('["\ud800"]', "surrogate"),  # text that already holds one, e.g. 'params' as a string
        ("9" * 5000, "not valid JSON"),
        ("{", "not valid JSON"),
    ]:
        with pytest.raises(RuntimeApiError) as caught:
            parse_json(bad)
        assert caught.value.status == 400 and words in caught.value.message, bad[:40]


def test_an_error_quoting_a_lone_surrogate_is_still_an_error_body() -> None:
    answer = error_response(404, "job \ud800 not found")
    assert json.loads(bytes(answer.body)) == {
        "error": {"message": "job \\ud800 not found", "code": 404}
    }
