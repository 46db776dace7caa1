"""IqpRuntime on the wire, against respx fixtures shaped as IBM Quantum Platform answers
(``shared/reference/iqp-rest-api.md``): IAM, headers and API base, jobs, results in both encodings,
sessions, tags, paging, 429/5xx retries that never duplicate a job, and ``qrt plan``/``qrt apply``
on this target (Programs refused before anything is sent, built-in batches applied)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from click.testing import CliRunner

from qrt_apply.cli import AppContext, cli
from qrt_apply.errors import AuthError, ConfigError, NotFoundError, TransportError
from qrt_apply.runtime.accounts import Account
from qrt_apply.runtime.base import SUBMIT_TAG_PREFIX, Runtime
from qrt_apply.runtime.encoding import dumps, loads
from qrt_apply.runtime.http_wire import RetryPolicy
from qrt_apply.runtime.iqp import IqpRuntime
from qrt_apply.runtime.iqp_auth import IBM_API_VERSION, api_base_url, iam_token_url
from qrt_apply.runtime.iqp_pubs import canonical_result
from qrt_apply.runtime.select import open_runtime

from projects import BELL, copy_example, write

API_KEY = "ibm-cloud-api-key-SECRET-0123456789"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123abcd:1111-2222::"
CRN_EU = "crn:v1:bluemix:public:quantum-computing:eu-de:a/0123abcd:3333-4444::"
CRN_STAGING = "crn:v1:staging:public:quantum-computing:us-east:a/0123abcd:5555-6666::"
IAM = "http://iam.test"
API = "http://platform.test/experimental/api/v1"
BACKEND = "ibm_loopback"
CONFIG = {
    "backend_name": BACKEND,
    "backend_version": "1.0.0",
    "n_qubits": 5,
    "basis_gates": ["ecr", "id", "rz", "sx", "x"],
    "gates": [
        {"name": "ecr", "parameters": [], "qasm_def": "", "coupling_map": [[0, 1], [1, 2], [2, 3]]},
        {"name": "ecr", "parameters": [], "qasm_def": "", "coupling_map": [[3, 4]]},
    ],
    "local": False,
    "simulator": False,
    "conditional": False,
    "open_pulse": False,
    "memory": True,
    "coupling_map": [[0, 1], [1, 2], [2, 3], [3, 4]],
    "online_date": "2024-01-01T00:00:00Z",
}


def bell_project(tmp_path: Path, manifest: str) -> Path:
    """A project of ``circuits/bell.qasm`` and ``manifest`` as ``manifests/b.yaml``."""
    root = tmp_path / "p"
    write(root, "circuits/bell.qasm", BELL)
    write(root, "manifests/b.yaml", manifest)
    return root


def jwt(iat: float, exp: float, n: int = 0) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'iat': iat, 'exp': exp, 'n': n})}.c2lnbmF0dXJl"


def account(
    crn: str = CRN, url: str | None = API, channel: str = "ibm_quantum_platform"
) -> Account:
    return Account(channel, API_KEY, url=url, instance=crn)


# -- a platform fixture: IAM plus the v1 API, with jobs that complete on their first read -----------


class Platform:
    """respx routes answering as IBM Quantum Platform does (the minimal answers the reference
    recorded, plus the fields qrt reads); every request is kept in ``router.calls``."""

    def __init__(self, *, plain_results: bool = False) -> None:
        self.router = respx.Router(assert_all_called=False)
        self.now = 1_000_000.0
        self.tokens: list[str] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.plain_results = plain_results
        self.post_faults: list[Any] = []  # answers (or exceptions) to the next POST /jobs
        self.job_faults_after_post: list[Any] = []  # applied after the job was created
        self.stored_elsewhere: dict[str, str] = {}  # job id -> the URL its result is kept at
        r = self.router
        r.post(f"{IAM}/identity/token").mock(side_effect=self.iam)
        r.get(f"{API}/backends").respond(json={"devices": [{"name": BACKEND}]})
        r.get(f"{API}/backends/{BACKEND}/configuration").respond(json=CONFIG)
        r.get(f"{API}/backends/{BACKEND}/status").respond(
            json={"state": True, "status": "active", "length_queue": 0}
        )
        r.post(f"{API}/jobs").mock(side_effect=self.create_job)
        r.get(f"{API}/jobs").mock(side_effect=self.list_jobs)
        r.get(url__regex=rf"{API}/jobs/(?P<job_id>[^/?]+)/results").mock(side_effect=self.results)
        r.get(url__regex=rf"{API}/jobs/(?P<job_id>[^/?]+)(\?.*)?$").mock(side_effect=self.get_job)
        r.post(f"{API}/sessions").mock(side_effect=self.create_session)
        r.patch(url__regex=rf"{API}/sessions/(?P<sid>[^/?]+)$").mock(side_effect=self.patch_session)

    # IAM
    def iam(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        if form.get("apikey") != [API_KEY]:
            return httpx.Response(
                400,
                json={
                    "errorCode": "BXNIM0415E",
                    "errorMessage": "Provided API key could not be found.",
                },
            )
        assert form["grant_type"] == ["urn:ibm:params:oauth:grant-type:apikey"]
        assert form["response_type"] == ["cloud_iam"]
        token = jwt(self.now, self.now + 3600, len(self.tokens))
        self.tokens.append(token)
        return httpx.Response(
            200, json={"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        )

    def check_headers(self, request: httpx.Request) -> None:
        assert request.headers["authorization"] == f"Bearer {self.tokens[-1]}"
        assert request.headers["service-crn"] == CRN
        assert request.headers["ibm-api-version"] == IBM_API_VERSION

    # jobs
    def create_job(self, request: httpx.Request) -> httpx.Response:
        self.check_headers(request)
        if self.post_faults:
            fault = self.post_faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        body = json.loads(request.content)
        job_id = f"job{next(self.ids)}"
        session_id = body.get("session_id")
        if session_id is not None and not self.sessions[session_id]["accepting_jobs"]:
            return httpx.Response(
                400, json={"errors": [{"code": 1217, "message": "Session closed"}]}
            )
        self.jobs[job_id] = {
            "id": job_id,
            "backend": body["backend"],
            "state": {"status": "Queued"},
            "status": "Queued",
            "program": {"id": body["program_id"]},
            "created": "2026-11-25T09:06:00.927Z",
            "session_id": session_id,
            "tags": body.get("tags", []),
            "params": body["params"],
            "timestamps": {
                "created": "2026-11-25T09:06:00.927Z",
                "running": None,
                "finished": None,
            },
        }
        if self.job_faults_after_post:
            return self.job_faults_after_post.pop(0)
        return httpx.Response(
            200,
            json={
                "id": job_id,
                "backend": body["backend"],
                "session_id": session_id,
                "private": False,
            },
        )

    def public(self, job: dict[str, Any], exclude_params: bool) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not (exclude_params and k == "params")}

    def get_job(self, request: httpx.Request, job_id: str) -> httpx.Response:
        self.check_headers(request)
        job = self.jobs.get(job_id)
        if job is None:
            return httpx.Response(
                404, json={"errors": [{"code": 1291, "message": f"Job not found: {job_id}"}]}
            )
        if job["state"]["status"] in ("Queued", "Running"):  # completes when read
            job["state"] = {"status": "Completed"}
            job["status"] = "Completed"
            job["timestamps"] |= {
                "running": "2026-11-25T09:06:01Z",
                "finished": "2026-11-25T09:06:02Z",
            }
        exclude = request.url.params.get("exclude_params") == "true"
        return httpx.Response(200, json=self.public(job, exclude))

    def list_jobs(self, request: httpx.Request) -> httpx.Response:
        self.check_headers(request)
        q = request.url.params
        jobs = list(reversed(self.jobs.values()))
        for tag in q.get_list("tags"):
            jobs = [j for j in jobs if tag in j["tags"]]
        if q.get("pending") == "true":
            jobs = [j for j in jobs if j["state"]["status"] in ("Queued", "Running")]
        if q.get("session_id"):
            jobs = [j for j in jobs if j["session_id"] == q["session_id"]]
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10))
        page = [
            self.public(j, q.get("exclude_params") == "true") for j in jobs[offset : offset + limit]
        ]
        return httpx.Response(
            200, json={"jobs": page, "count": len(jobs), "limit": limit, "offset": offset}
        )

    def results(self, request: httpx.Request, job_id: str) -> httpx.Response:
        self.check_headers(request)
        if job_id in self.stored_elsewhere:
            return httpx.Response(200, json={"url": self.stored_elsewhere[job_id]})
        job = self.jobs[job_id]
        program = job["program"]["id"]
        if program == "sampler":
            text = (
                plain_sampler([0, 3, 3, 0, 3])
                if self.plain_results
                else encoded_sampler([0, 3, 3, 0, 3])
            )
        else:
            text = (
                plain_estimator(0.5, 0.01) if self.plain_results else encoded_estimator(0.5, 0.01)
            )
        return httpx.Response(200, text=text)

    # sessions
    def create_session(self, request: httpx.Request) -> httpx.Response:
        self.check_headers(request)
        body = json.loads(request.content)
        sid = f"s{next(self.ids)}"
        self.sessions[sid] = {"id": sid, "accepting_jobs": True, **body}
        return httpx.Response(
            200, json={"id": sid, "mode": body["mode"], "backend_name": body["backend"]}
        )

    def patch_session(self, request: httpx.Request, sid: str) -> httpx.Response:
        self.check_headers(request)
        if sid not in self.sessions:
            return httpx.Response(
                404, json={"errors": [{"code": 1404, "message": "Session not found"}]}
            )
        self.sessions[sid].update(json.loads(request.content))
        return httpx.Response(204)

    # helpers
    def runtime(self, acct: Account | None = None, **kwargs: Any) -> IqpRuntime:
        self.sleeps: list[float] = []
        kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.5, total_time=60))
        return IqpRuntime(
            acct or account(),
            client=httpx.Client(transport=httpx.MockTransport(self.router.handler)),
            sleep=self.sleeps.append,
            clock=lambda: 0.0,
            wall_clock=lambda: self.now,
            environ={"IAM_URL": IAM},
            **kwargs,
        )

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        url = API + path
        return [
            c.request
            for c in self.router.calls
            if c.request.method == method and str(c.request.url).split("?")[0] == url
        ]


# -- result texts in the platform's two encodings ---------------------------------------------------


def _ndarray(value: Any) -> Any:
    import numpy as np

    return json.loads(dumps(np.asarray(value)))


def encoded_sampler(samples: list[int], num_bits: int = 2) -> str:
    import numpy as np

    array = json.loads(dumps(np.asarray([[s] for s in samples], dtype=np.uint8)))
    bits = {"__type__": "BitArray", "__value__": {"array": array, "num_bits": num_bits}}
    data = {
        "__type__": "DataBin",
        "__value__": {"field_names": ["c"], "shape": [], "fields": {"c": bits}},
    }
    pub = {
        "__type__": "SamplerPubResult",
        "__value__": {"data": data, "metadata": {"shots": len(samples), "circuit_metadata": {}}},
    }
    return json.dumps(
        {
            "__type__": "PrimitiveResult",
            "__value__": {"pub_results": [pub], "metadata": {"version": 2}},
        }
    )


def plain_sampler(samples: list[int]) -> str:
    data = {"c": {"samples": [hex(s) for s in samples], "num_bits": 2}}
    return json.dumps(
        {
            "results": [
                {"data": data, "metadata": {"shots": len(samples), "circuit_metadata": {}}}
            ],
            "metadata": {"version": 2},
        }
    )


def encoded_estimator(ev: float, std: float) -> str:
    fields = {"evs": _ndarray(ev), "stds": _ndarray(std)}
    data = {
        "__type__": "DataBin",
        "__value__": {"field_names": ["evs", "stds"], "shape": [], "fields": fields},
    }
    pub = {
        "__type__": "PubResult",
        "__value__": {
            "data": data,
            "metadata": {"target_precision": 0.01, "shots": 10000, "circuit_metadata": {}},
        },
    }
    return json.dumps(
        {
            "__type__": "PrimitiveResult",
            "__value__": {"pub_results": [pub], "metadata": {"version": 2}},
        }
    )


def plain_estimator(ev: float, std: float) -> str:
    data = {"evs": ev, "stds": std, "ensemble_standard_error": std}
    return json.dumps(
        {
            "results": [
                {
                    "data": data,
                    "metadata": {"target_precision": 0.01, "shots": 10000, "circuit_metadata": {}},
                }
            ],
            "metadata": {"version": 2},
        }
    )


@pytest.fixture
def platform() -> Iterator[Platform]:
    yield Platform()


def no_secret(text: str, platform: Platform) -> None:
    assert API_KEY not in text
    for token in platform.tokens:
        assert token not in text


# -- addresses, IAM and headers --------------------------------------------------------------------


def test_api_base_and_iam_url_as_the_official_client_derives_them() -> None:
    assert api_base_url(account(url=None)) == "https://quantum.cloud.ibm.com/api/v1"
    assert api_base_url(account(CRN_EU, url="https://cloud.ibm.com")) == (
        "https://eu-de.quantum.cloud.ibm.com/api/v1"
    )
    assert api_base_url(account(url="http://127.0.0.1:9/experimental/api/v1/")) == (
        "http://127.0.0.1:9/experimental/api/v1"
    )
    assert iam_token_url(account(), {}) == "https://iam.cloud.ibm.com/identity/token"
    assert (
        iam_token_url(account(CRN_STAGING), {}) == "https://iam.test.cloud.ibm.com/identity/token"
    )
    assert iam_token_url(account(), {"IAM_URL": "http://127.0.0.1:7/"}) == (
        "http://127.0.0.1:7/identity/token"
    )
    with pytest.raises(ConfigError, match="CRN"):
        Account("ibm_quantum_platform", API_KEY, instance="my-instance").validate()


def test_is_a_runtime_that_logs_in_lazily_with_bearer_crn_and_api_version(
    platform: Platform,
) -> None:
    rt = platform.runtime()
    assert isinstance(rt, Runtime)
    assert rt.target.to_json() == {"channel": "ibm_quantum_platform", "url": API, "instance": CRN}
    assert platform.router.calls.call_count == 0  # nothing sent before the first call
    assert [b.name for b in rt.backends()] == [BACKEND]
    backend = rt.backends()[0]
    assert (backend.num_qubits, backend.simulator, backend.operational) == (5, False, True)
    assert len(platform.tokens) == 1  # one token for every call
    no_secret(repr(rt) + repr(rt.account) + json.dumps(rt.target.to_json()), platform)


def test_the_token_is_renewed_before_it_expires_and_after_a_401(platform: Platform) -> None:
    rt = platform.runtime()
    rt.backends()
    platform.now += 0.79 * 3600
    rt.backends()
    assert len(platform.tokens) == 1
    platform.now += 0.02 * 3600  # past 80 % of the token's life
    rt.backends()
    assert len(platform.tokens) == 2
    # the API refuses the current token once: one new token, the call sent again
    route = platform.router.get(f"{API}/backends")
    route.side_effect = [
        httpx.Response(401, json={"errors": [{"message": "expired"}]}),
        httpx.Response(200, json={"devices": []}),
    ]
    assert rt.backends() == []
    assert len(platform.tokens) == 3


def test_a_refused_api_key_is_an_auth_error_without_the_key(platform: Platform) -> None:
    rt = platform.runtime(
        Account("ibm_quantum_platform", "wrong-key-0123456789", url=API, instance=CRN)
    )
    with pytest.raises(AuthError, match="IAM refused the API key") as caught:
        rt.backends()
    assert "wrong-key-0123456789" not in caught.value.message
    assert caught.value.exit_code == 1


def test_backends_listed_as_plain_names_too(platform: Platform) -> None:
    platform.router.get(f"{API}/backends").respond(json={"devices": [BACKEND]})  # 0.40-era form
    assert [b.name for b in platform.runtime().backends()] == [BACKEND]


def test_ibm_cloud_and_ibm_quantum_platform_accounts_open_this_runtime(tmp_path: Path) -> None:
    for channel in ("ibm_cloud", "ibm_quantum_platform"):
        config = {"target": {"channel": channel, "url": API, "instance": CRN}}
        rt = open_runtime(
            tmp_path,
            config=config,
            environ={"QISKIT_IBM_TOKEN": API_KEY},
            account_file=tmp_path / "none.json",
        )
        assert isinstance(rt, IqpRuntime) and rt.target.channel == channel
        rt.close()


# -- programs: none on this platform ---------------------------------------------------------------


def test_programs_are_refused_without_a_call(platform: Platform) -> None:
    rt = platform.runtime()
    assert rt.programs() == []
    with pytest.raises(NotFoundError, match="no program upload"):
        rt.program("my-program")
    with pytest.raises(ConfigError, match="no program upload"):
        rt.upload_program("def main(): pass", {"name": "p", "max_execution_time": 60})
    with pytest.raises(ConfigError, match="no program upload"):
        rt.run("my-program", {}, backend=BACKEND)
    assert platform.router.calls.call_count == 0


# -- jobs --------------------------------------------------------------------------------------


def sent_body(platform: Platform, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(platform.calls("POST", "/jobs")[index].content)
    return body


def test_sampler_job_body_as_the_official_client_sends_it(platform: Platform) -> None:
    rt = platform.runtime()
    tag = SUBMIT_TAG_PREFIX + "abc123"
    inputs = {
        "pubs": [{"circuit": BELL, "shots": 100}, BELL],
        "options": {"default_shots": 4000, "seed_simulator": 1234},
    }
    job = rt.run("sampler", inputs, backend=BACKEND, tags=["example", tag], log_level="INFO")
    body = sent_body(platform)
    assert (body["program_id"], body["backend"], body["tags"], body["log_level"]) == (
        "sampler",
        BACKEND,
        ["example", tag],
        "INFO",
    )
    assert "session_id" not in body
    params = body["params"]
    assert (params["version"], params["support_qiskit"]) == (2, True)
    assert params["options"] == {"default_shots": 4000, "simulator": {"seed_simulator": 1234}}
    (circuit, values, shots), (_, _, default_shots) = params["pubs"]
    assert (shots, default_shots) == (100, None)
    assert circuit["__type__"] == "QuantumCircuit" and values["__type__"] == "ndarray"
    decoded = loads(json.dumps(circuit))
    assert decoded.num_qubits == 5  # laid out on the device
    assert set(decoded.count_ops()) <= {"ecr", "rz", "sx", "x", "id", "measure", "barrier"}
    assert loads(json.dumps(values)).shape == (0,)
    assert (job.id, job.status, job.backend, job.program_id) == (
        "job1",
        "QUEUED",
        BACKEND,
        "sampler",
    )
    assert tag in job.tags


def test_estimator_observables_follow_the_layout_onto_the_device(platform: Platform) -> None:
    rt = platform.runtime()
    inputs = {
        "pubs": [
            {
                "circuit": {"library": "real_amplitudes", "num_qubits": 2, "reps": 2},
                "observables": [["II", 1], ["IZ", 2], ["XI", 3]],
                "parameter_values": [0, 1, 1, 2, 3, 5],
            }
        ],
        "options": {"default_precision": 0.01},
        "precision": 0.02,
    }
    rt.run("estimator", inputs, backend=BACKEND)
    params = sent_body(platform)["params"]
    circuit, observables, values, precision = params["pubs"][0]
    assert params["options"] == {"default_precision": 0.01}
    assert precision == 0.02
    assert loads(json.dumps(values)).tolist() == [0, 1, 1, 2, 3, 5]
    assert sorted(observables.values()) == [1.0, 2.0, 3.0]
    assert all(len(label) == 5 for label in observables)  # the device's width
    assert loads(json.dumps(circuit)).num_qubits == 5


def test_bad_pub_is_refused_before_sending(platform: Platform) -> None:
    rt = platform.runtime()
    with pytest.raises(Exception, match=r"pubs\[0\]"):
        rt.run("estimator", {"pubs": [{"circuit": BELL}]}, backend=BACKEND)
    assert platform.calls("POST", "/jobs") == []


def test_job_read_listing_by_tag_and_paging(platform: Platform) -> None:
    rt = platform.runtime()
    for n in range(7):
        rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND, tags=["sweep"] if n % 2 == 0 else [])
    found = rt.jobs(limit=None, tags=["sweep"])
    assert [j.id for j in found] == ["job7", "job5", "job3", "job1"]
    pages = platform.calls("GET", "/jobs")
    assert all(r.url.params["exclude_params"] == "true" for r in pages)
    assert rt.jobs(limit=3, skip=2)[0].id == "job5"
    job = rt.job("job1")
    assert (job.status, job.started, job.ended) == (
        "COMPLETED",
        "2026-11-25T09:06:01Z",
        "2026-11-25T09:06:02Z",
    )
    assert job.params is not None and job.params["version"] == 2
    assert rt.job("job2", include_params=False).params is None
    with pytest.raises(NotFoundError):
        rt.job("nope")


def test_ran_too_long_is_cancelled_as_every_runtime_reports_it(platform: Platform) -> None:
    rt = platform.runtime()
    platform.jobs["long"] = {
        "id": "long",
        "state": {"status": "Failed", "reason": "ran too long", "reason_code": 1305},
        "program": {"id": "sampler"},
        "tags": [],
    }
    job = rt.job("long", include_params=False)
    assert (job.status, job.reason) == ("CANCELLED", "RAN TOO LONG")


# -- retries never duplicate a job -------------------------------------------------------------


def test_5xx_after_the_job_was_made_adopts_it_by_tag(platform: Platform) -> None:
    rt = platform.runtime()
    platform.job_faults_after_post = [httpx.Response(503, text="upstream timeout")]
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert len(platform.calls("POST", "/jobs")) == 1 and len(platform.jobs) == 1
    assert job.id == "job1"
    lookups = platform.calls("GET", "/jobs")
    assert [r.url.params.get_list("tags") for r in lookups] == [
        [t for t in job.tags if t.startswith(SUBMIT_TAG_PREFIX)]
    ]


def test_timeout_after_the_job_was_made_adopts_it_too(platform: Platform) -> None:
    rt = platform.runtime()

    def lose_answer(request: httpx.Request) -> httpx.Response:
        platform.create_job(request)
        raise httpx.ReadTimeout("read timed out", request=request)

    platform.router.post(f"{API}/jobs").mock(side_effect=[lose_answer, platform.create_job])
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert len(platform.calls("POST", "/jobs")) == 1 and list(platform.jobs) == [job.id]


def test_5xx_before_the_job_was_made_sends_once_more(platform: Platform) -> None:
    rt = platform.runtime()
    platform.post_faults = [httpx.Response(502, text="bad gateway")]
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert len(platform.calls("POST", "/jobs")) == 2 and list(platform.jobs) == [job.id]
    assert len(platform.calls("GET", "/jobs")) == 1  # looked for it before re-sending


def test_429_is_retried_after_retry_after_without_a_lookup(platform: Platform) -> None:
    rt = platform.runtime()
    platform.post_faults = [
        httpx.Response(
            429, headers={"Retry-After": "3"}, json={"errors": [{"message": "slow down"}]}
        )
    ]
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert platform.sleeps == [3.0]
    assert len(platform.calls("POST", "/jobs")) == 2 and list(platform.jobs) == [job.id]
    assert platform.calls("GET", "/jobs") == []  # a 429 was not acted on: nothing to look for


def test_a_rejected_job_is_not_retried_and_the_message_hides_secrets(platform: Platform) -> None:
    rt = platform.runtime()
    platform.post_faults = [
        httpx.Response(400, json={"errors": [{"code": 1234, "message": "bad pubs"}]})
    ]
    with pytest.raises(Exception, match="bad pubs") as caught:
        rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert len(platform.calls("POST", "/jobs")) == 1 and platform.jobs == {}
    no_secret(str(caught.value), platform)


# -- sessions --------------------------------------------------------------------------------


def test_sessions_open_in_either_mode_and_close_by_refusing_jobs(platform: Platform) -> None:
    rt = platform.runtime()
    for mode in ("dedicated", "batch"):
        sid = rt.open_session(BACKEND, mode)
        body = json.loads(platform.calls("POST", "/sessions")[-1].content)
        assert body == {"mode": mode, "backend": BACKEND, "instance": CRN}
        job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND, session_id=sid)
        assert job.session_id == sid and sent_body(platform)["session_id"] == sid
        rt.close_session(sid)
        assert json.loads(platform.calls("PATCH", f"/sessions/{sid}")[-1].content) == {
            "accepting_jobs": False
        }
        assert platform.sessions[sid]["accepting_jobs"] is False
    rt.close_session("gone-already")  # 404: nothing to close
    with pytest.raises(ConfigError, match="session mode"):
        rt.open_session(BACKEND, "exclusive")


@pytest.mark.parametrize("fault", ["503", "timeout"])
def test_a_session_is_not_opened_again_after_an_ambiguous_failure(
    platform: Platform, fault: str
) -> None:
    rt = platform.runtime()

    def made_then_lost(request: httpx.Request) -> httpx.Response:
        platform.create_session(request)  # the platform opened it; the answer never arrives
        if fault == "timeout":
            raise httpx.ReadTimeout("read timed out", request=request)
        return httpx.Response(503, text="upstream timeout")

    platform.router.post(f"{API}/sessions").mock(
        side_effect=[made_then_lost, platform.create_session]
    )
    with pytest.raises(TransportError, match="outcome is unknown") as caught:
        rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND, start_session=True)
    assert "not sent again" in str(caught.value) and "POST" in str(caught.value)
    assert len(platform.calls("POST", "/sessions")) == 1 and len(platform.sessions) == 1
    assert platform.calls("POST", "/jobs") == [] and platform.sleeps == []
    no_secret(str(caught.value), platform)


def test_a_session_post_is_sent_again_after_429_or_a_refused_connection(
    platform: Platform,
) -> None:
    rt = platform.runtime()

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    busy = httpx.Response(429, headers={"Retry-After": "2"}, json={"errors": []})
    platform.router.post(f"{API}/sessions").mock(
        side_effect=[busy, refused, platform.create_session]
    )
    sid = rt.open_session(BACKEND, "batch")
    assert len(platform.calls("POST", "/sessions")) == 3 and list(platform.sessions) == [sid]
    assert platform.sleeps[0] == 2.0


# -- results in both encodings ---------------------------------------------------------------


def test_results_in_both_encodings_decode_to_the_embedded_form() -> None:
    import numpy as np
    from qiskit.primitives.containers import BitArray, DataBin, PubResult, SamplerPubResult

    from qrt_apply.engine.primitives import canonical_pub_result

    bits = BitArray(np.array([[0], [3], [3], [0], [3]], dtype=np.uint8), 2)
    expected_sampler = canonical_pub_result(
        SamplerPubResult(DataBin(c=bits), {"shots": 5, "circuit_metadata": {}})
    )
    for text in (encoded_sampler([0, 3, 3, 0, 3]), plain_sampler([0, 3, 3, 0, 3])):
        decoded = json.loads(canonical_result(text) or "")
        assert decoded["results"] == [expected_sampler]
        assert decoded["results"][0]["data"]["c"]["counts"] == {"00": 2, "11": 3}
    meta = {"target_precision": 0.01, "shots": 10000, "circuit_metadata": {}}
    evs = DataBin(evs=np.asarray(0.5), stds=np.asarray(0.01), shape=())
    expected_estimator = canonical_pub_result(PubResult(evs, meta))
    for text in (encoded_estimator(0.5, 0.01), plain_estimator(0.5, 0.01)):
        assert json.loads(canonical_result(text) or "")["results"] == [expected_estimator]
    assert canonical_result("Traceback: the job failed") is None


def test_shaped_plain_samples_keep_their_shape() -> None:
    text = json.dumps(
        {
            "results": [
                {
                    "data": {"meas": {"samples": [["0x1", "0x1"], ["0x0", "0x1"]], "num_bits": 1}},
                    "metadata": {},
                }
            ]
        }
    )
    pub = json.loads(canonical_result(text) or "")["results"][0]["data"]["meas"]
    assert pub["counts"] == [{"1": 2}, {"0": 1, "1": 1}] and pub["shape"] == [2]


@pytest.mark.parametrize("plain", [False, True])
def test_job_result_reads_either_encoding(plain: bool) -> None:
    platform = Platform(plain_results=plain)
    rt = platform.runtime()
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    assert rt.job(job.id).status == "COMPLETED"
    assert json.loads(rt.job_result(job.id))["results"][0]["data"]["c"]["counts"] == {
        "00": 2,
        "11": 3,
    }
    assert rt.job_interim_results(job.id) == []


# -- qrt plan / apply on this target ----------------------------------------------------------


def run_cli(root: Path, runtime: Runtime, *args: str) -> Any:
    obj = AppContext(project_dir=root, _runtime=runtime)
    return CliRunner().invoke(cli, ["-C", str(root), *args], obj=obj)


def test_plan_refuses_program_documents_before_sending_anything(
    platform: Platform, tmp_path: Path
) -> None:
    root = copy_example(tmp_path / "example")
    result = run_cli(root, platform.runtime(), "plan")
    assert result.exit_code == 1, result.output
    assert "manifests/programs.yaml:2: Program 'ghz-sweep'" in result.output
    assert (
        "IBM Quantum Platform (channel ibm_quantum_platform) has no program upload" in result.output
    )
    assert "Traceback" not in result.output
    assert platform.router.calls.call_count == 0 and not (root / "qrt.lock").exists()
    # the batch running the program is refused too when it is planned on its own
    result = run_cli(root, platform.runtime(), "plan", "--target", "batch.ghz")
    assert result.exit_code == 1 and "manifests/programs.yaml:2: Program" in result.output
    platform.router.get(f"{API}/backends").respond(json={"devices": [{"name": "aer_simulator"}]})
    platform.router.get(f"{API}/backends/aer_simulator/configuration").respond(json=CONFIG)
    platform.router.get(f"{API}/backends/aer_simulator/status").respond(json={"state": True})
    result = run_cli(
        root, platform.runtime(), "plan", "--target", "batch.bell", "--target", "batch.energy"
    )
    assert result.exit_code == 0, result.output
    assert "job.bell/bell" in result.output and "ghz" not in result.output


@pytest.mark.parametrize("session", ["true", "batch"])
def test_apply_runs_a_session_batch_and_closes_its_session(
    platform: Platform, tmp_path: Path, session: str
) -> None:
    root = bell_project(
        tmp_path,
        f"""
        apiVersion: qrt/v1
        kind: JobBatch
        name: bells
        program: sampler
        backend: {BACKEND}
        session: {session}
        options: {{default_shots: 100}}
        jobs:
          - name: b-${{n}}
            matrix: {{n: [1, 2, 3]}}
            inputs:
              pubs:
                - circuit: {{$file: ../circuits/bell.qasm}}
        """,
    )
    result = run_cli(root, platform.runtime(), "apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    (sid,) = platform.sessions
    assert platform.sessions[sid]["mode"] == ("batch" if session == "batch" else "dedicated")
    assert platform.sessions[sid]["accepting_jobs"] is False
    assert [j["session_id"] for j in platform.jobs.values()] == [sid, sid, sid]
    locked = json.loads((root / "qrt.lock").read_text())
    assert locked["target"]["channel"] == "ibm_quantum_platform"
    for record in locked["jobs"].values():
        assert record["status"] == "COMPLETED" and record["session_id"] == sid
        assert record["result"]["results"][0]["data"]["c"]["counts"] == {"00": 2, "11": 3}
    no_secret((root / "qrt.lock").read_text() + result.output, platform)
    # applied again: nothing to do, nothing sent
    posts = len(platform.calls("POST", "/jobs"))
    again = run_cli(root, platform.runtime(), "apply", "--auto-approve")
    assert again.exit_code == 0 and "No changes" in again.output
    assert len(platform.calls("POST", "/jobs")) == posts and len(platform.sessions) == 1


def test_public_surfaces_and_no_qiskit_on_the_plan_path() -> None:
    import importlib
    import subprocess
    import sys

    for name in ("iqp", "iqp_auth", "iqp_pubs"):
        module = importlib.import_module(f"qrt_apply.runtime.{name}")
        assert module.__doc__ and module.__all__
        assert all(hasattr(module, attr) for attr in module.__all__), name
    probe = (
        "import sys, qrt_apply.runtime.iqp, qrt_apply.runtime.select; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('qiskit', 'numpy')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_plan_refuses_a_batch_without_backend(platform: Platform, tmp_path: Path) -> None:
    root = bell_project(
        tmp_path,
        """
        apiVersion: qrt/v1
        kind: JobBatch
        name: nowhere
        program: sampler
        jobs:
          - name: bell
            inputs: {pubs: [{circuit: {$file: ../circuits/bell.qasm}}]}
        """,
    )
    result = run_cli(root, platform.runtime(), "plan")
    assert result.exit_code == 1
    assert "manifests/b.yaml:1: JobBatch 'nowhere' needs a backend" in result.output
    assert platform.router.calls.call_count == 0


def test_backends_from_the_listing_alone_when_it_has_qubits(platform: Platform) -> None:
    listing = {
        "devices": [
            {"name": "ibm_a", "qubits": 156, "status": {"name": "online", "reason": "available"}},
            {"name": "ibm_b", "qubits": 133, "status": {"name": "paused", "reason": "calibrating"}},
        ]
    }
    platform.router.get(f"{API}/backends").respond(json=listing)
    found = platform.runtime().backends()
    assert [(b.name, b.num_qubits, b.operational, b.simulator) for b in found] == [
        ("ibm_a", 156, True, False),
        ("ibm_b", 133, False, False),
    ]
    assert [str(c.request.url) for c in platform.router.calls][-1] == f"{API}/backends"
    assert len(platform.router.calls) == 2  # the token, then the listing: no per-device calls


def test_a_result_kept_outside_the_api_is_downloaded_without_our_headers(
    platform: Platform,
) -> None:
    rt = platform.runtime()
    job = rt.run("sampler", {"pubs": [BELL]}, backend=BACKEND)
    stored = "https://storage.test/results/job1.json?X-Amz-Signature=s1gn4ture"
    platform.stored_elsewhere[job.id] = stored
    download = platform.router.get(stored).respond(text=encoded_sampler([0, 3, 3, 0, 3]))
    result = json.loads(rt.job_result(job.id))
    assert result["results"][0]["data"]["c"]["counts"] == {"00": 2, "11": 3}
    sent = download.calls.last.request
    assert "authorization" not in sent.headers and "service-crn" not in sent.headers
    download.respond(403, text="Request has expired")
    with pytest.raises(Exception, match="could not be downloaded from storage.test") as caught:
        rt.job_result(job.id)
    assert "s1gn4ture" not in str(caught.value)


def test_apply_adopts_the_job_an_interrupted_apply_submitted(
    platform: Platform, tmp_path: Path
) -> None:
    from qrt_apply.manifests import load_desired_state
    from qrt_apply.model import submission_tag

    root = bell_project(
        tmp_path,
        f"""
        apiVersion: qrt/v1
        kind: JobBatch
        name: once
        program: sampler
        backend: {BACKEND}
        jobs:
          - name: bell
            inputs: {{pubs: [{{circuit: {{$file: ../circuits/bell.qasm}}}}]}}
        """,
    )
    # an apply that died after its POST: the job is on the platform, qrt.lock knows nothing of it
    rt = platform.runtime()
    [job] = load_desired_state(root, root / "manifests").jobs()
    tag = submission_tag(rt.target.to_json(), job.address, job.digest, 0)
    posted = rt.run("sampler", job.params(), backend=BACKEND, tags=[*job.tags, tag])
    result = run_cli(root, platform.runtime(), "apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert len(platform.calls("POST", "/jobs")) == 1  # found by its tag, not sent again
    record = json.loads((root / "qrt.lock").read_text())["jobs"]["job.once/bell"]
    assert (record["id"], record["status"], record["submission_tag"]) == (
        posted.id,
        "COMPLETED",
        tag,
    )
