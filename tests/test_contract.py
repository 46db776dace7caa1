"""One contract for every Runtime: the embedded runtime, HttpRuntime talking to a real ``qrt serve``
on loopback (its program API) and IqpRuntime talking to the same server's IBM Quantum Platform v1
API run the same tests with the same expectations.

The platform has no program upload: there every program test checks that programs are refused
instead, and the job tests run the built-in sampler where the others run an uploaded program.

Each runtime is module-scoped (one data dir, one server); tests keep out of each other's way with
unique program names and a unique job tag per test.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrt_apply.errors import ConfigError, ConflictError, NotFoundError, RuntimeApiError
from qrt_apply.runtime.accounts import PLATFORM_CHANNELS, Account
from qrt_apply.runtime.base import JobInfo, Runtime
from qrt_apply.runtime.embedded import EmbeddedRuntime
from qrt_apply.runtime.http import SUBMIT_TAG_PREFIX, HttpRuntime
from qrt_apply.runtime.iqp import IqpRuntime

from projects import BELL
from support.serve import ServerHandle, run_qrt, running_server

HELLO = """\
def main(backend, user_messenger, **kwargs):
    for i in range(3):
        user_messenger.publish({"iteration": i})
    print("hello log line", flush=True)
    return {"greeting": "hello " + kwargs.get("name", "world")}
"""
HELLO_V2 = HELLO.replace('"hello "', '"hi "')
FAILS = """\
def main(backend, user_messenger, **kwargs):
    raise ValueError("deliberate failure 42")
"""
SLEEPS = """\
import time

def main(backend, user_messenger, seconds=60, **kwargs):
    time.sleep(seconds)
    return "woke up"
"""
SPEC = {
    "parameters": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": [],
    }
}
WAIT = 180.0


@pytest.fixture(scope="module")
def embedded_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = EmbeddedRuntime(tmp_path_factory.mktemp("embedded") / ".qrt", display_url=".qrt")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with running_server(tmp_path_factory.mktemp("serve"), users=("alice",)) as handle:
        yield handle


@pytest.fixture(scope="module")
def http_runtime(server: ServerHandle) -> Iterator[Runtime]:
    account = Account("ibm_quantum", server.token, url=server.api_url)
    with httpx.Client(trust_env=False, timeout=60.0) as client:
        runtime = HttpRuntime(account, client=client)
        yield runtime
        runtime.close()


def instance_of(server: ServerHandle, user: str = "alice") -> str:
    """The user's instance CRN, as ``qrt users list --json`` shows it."""
    done = run_qrt("users", "list", "--json", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    return {row["name"]: row["instance"] for row in json.loads(done.stdout)}[user]


def platform_account(server: ServerHandle) -> Account:
    """The server's v1 API as IBM Quantum Platform, configured as for the official client."""
    url = f"{server.url}/experimental/api/v1"
    return Account("ibm_quantum_platform", server.token, url=url, instance=instance_of(server))


@pytest.fixture(scope="module")
def iqp_runtime(server: ServerHandle) -> Iterator[Runtime]:
    with httpx.Client(trust_env=False, timeout=60.0) as client:
        runtime = IqpRuntime(
            platform_account(server), client=client, environ={"IAM_URL": server.url}
        )
        yield runtime
        runtime.close()


@pytest.fixture(scope="module", params=["embedded", "http", "iqp"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    found: Runtime = request.getfixturevalue(f"{request.param}_runtime")
    return found


def takes_programs(runtime: Runtime) -> bool:
    return runtime.target.channel not in PLATFORM_CHANNELS


def refuses_programs(runtime: Runtime) -> bool:
    """On IBM Quantum Platform: check that programs are refused, and say so (True)."""
    if takes_programs(runtime):
        return False
    assert runtime.programs() == []
    with pytest.raises(NotFoundError, match="no program upload"):
        runtime.program("no-such-program")
    with pytest.raises(ConfigError, match="no program upload"):
        upload(runtime)
    with pytest.raises(ConfigError, match="no program upload"):
        runtime.run("some-program", {}, backend="aer_simulator")
    return True


def a_job(runtime: Runtime) -> tuple[str, dict[str, Any]]:
    """(program id, inputs) of a short job: an uploaded program, or a Bell sampler where programs
    cannot be uploaded."""
    if takes_programs(runtime):
        return upload(runtime), {}
    return "sampler", {"pubs": [{"circuit": BELL, "shots": 16}]}


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait(runtime: Runtime, job_id: str, timeout: float = WAIT) -> JobInfo:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        job = runtime.job(job_id)
        if job.final:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def user_tags(job: JobInfo) -> set[str]:
    """The job's tags without the HTTP client's idempotency tag."""
    return {t for t in job.tags if not t.startswith(SUBMIT_TAG_PREFIX)}


def upload(runtime: Runtime, source: str = HELLO, **meta: Any) -> str:
    metadata = {"name": unique("prog"), "max_execution_time": 300, "description": "d", **meta}
    return runtime.upload_program(source, metadata)


def test_is_a_runtime(runtime: Runtime) -> None:
    assert isinstance(runtime, Runtime)
    assert runtime.target.channel in ("embedded", "ibm_quantum", "ibm_quantum_platform")
    assert "token" not in json.dumps(runtime.target.to_json()).lower()


def test_backends(runtime: Runtime) -> None:
    backends = {b.name: b for b in runtime.backends()}
    assert backends["aer_simulator"].num_qubits > 2 and backends["aer_simulator"].operational
    assert backends["fake_noisy_5q"].num_qubits == 5
    if not takes_programs(runtime):
        # the v1 API calls every simulated device a device (simulator: false), as real ones are,
        # so that the official client opens sessions on them
        assert not backends["aer_simulator"].simulator
        return
    assert backends["aer_simulator"].simulator
    assert backends["fake_noisy_5q"].noisy and not backends["aer_simulator"].noisy


def test_backends_agree(
    embedded_runtime: Runtime, http_runtime: Runtime, server: ServerHandle
) -> None:
    def without_noise(runtime: Runtime) -> list[tuple[Any, ...]]:
        return [(b.name, b.num_qubits, b.simulator, b.operational) for b in runtime.backends()]

    assert without_noise(embedded_runtime) == without_noise(http_runtime)
    assert embedded_runtime.backends() == http_runtime.backends()


def test_program_lifecycle(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return
    name = unique("life")
    meta = {"name": name, "max_execution_time": 300, "description": "first", "spec": SPEC}
    program_id = runtime.upload_program(HELLO, meta)
    assert program_id.startswith(f"{name}-")
    listed = {p.id: p for p in runtime.programs()}
    assert listed[program_id].name == name and listed[program_id].data is None
    program = runtime.program(program_id)
    assert (program.name, program.data, program.description) == (name, HELLO, "first")
    assert (program.max_execution_time, dict(program.spec), program.is_public) == (300, SPEC, False)
    assert program.creation_date

    runtime.update_program(program_id, HELLO_V2)
    assert runtime.program(program_id).data == HELLO_V2
    new_spec = {"parameters": {"type": "object", "properties": {}}}
    runtime.update_program(program_id, description="second", max_execution_time=60, spec=new_spec)
    program = runtime.program(program_id)
    assert (program.name, program.description, program.max_execution_time) == (name, "second", 60)
    assert (dict(program.spec), program.data) == (new_spec, HELLO_V2)

    runtime.set_program_visibility(program_id, True)
    assert runtime.program(program_id).is_public is True
    runtime.set_program_visibility(program_id, False)
    assert runtime.program(program_id).is_public is False

    runtime.delete_program(program_id)
    with pytest.raises(NotFoundError):
        runtime.program(program_id)
    with pytest.raises(NotFoundError):
        runtime.delete_program(program_id)
    assert program_id not in {p.id for p in runtime.programs()}


def test_duplicate_upload_conflicts(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return
    name = unique("dup")
    runtime.upload_program(HELLO, {"name": name, "max_execution_time": 10, "description": ""})
    with pytest.raises(ConflictError):
        runtime.upload_program(FAILS, {"name": name, "max_execution_time": 10, "description": ""})


def test_programs_paging(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return
    for _ in range(3):
        upload(runtime)
    every = [p.id for p in runtime.programs()]
    assert len(every) >= 3 and len(set(every)) == len(every)
    assert [p.id for p in runtime.programs(limit=2)] == every[:2]
    assert [p.id for p in runtime.programs(skip=1)] == every[1:]
    assert [p.id for p in runtime.programs(limit=2, skip=len(every) - 1)] == every[-1:]


def test_unknown_things_are_not_found(runtime: Runtime) -> None:
    unknown_program = [lambda: runtime.run("no-such-program-000000000000", {})]
    for call in (
        lambda: runtime.program("no-such-program-000000000000"),
        *(unknown_program if takes_programs(runtime) else []),
        lambda: runtime.job("nosuchjob00000000000"),
        lambda: runtime.job_result("nosuchjob00000000000"),
        lambda: runtime.delete_job("nosuchjob00000000000"),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_builtin_sampler_bell(runtime: Runtime) -> None:
    tag = unique()
    inputs = {"pubs": [{"circuit": BELL}], "options": {"default_shots": 256, "seed_simulator": 7}}
    job = runtime.run("sampler", inputs, backend="aer_simulator", tags=[tag])
    assert (job.program_id, job.backend) == ("sampler", "aer_simulator")
    assert job.status in ("QUEUED", "RUNNING", "COMPLETED")
    done = wait(runtime, job.id)
    assert done.status == "COMPLETED", runtime.job_result(job.id)
    result = json.loads(runtime.job_result(job.id))
    [pub] = result["results"]
    counts = pub["data"]["c"]["counts"]
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 256
    assert user_tags(done) == {tag}


def test_uploaded_program_result_interim_and_logs(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return
    program_id = upload(runtime)
    job = runtime.run(program_id, {"name": "qrt"}, tags=[unique()])
    done = wait(runtime, job.id)
    assert done.status == "COMPLETED", runtime.job_result(job.id)
    assert (done.program_id, done.backend) == (program_id, "aer_simulator")
    assert done.created and done.ended
    assert json.loads(runtime.job_result(job.id)) == {"greeting": "hello qrt"}
    interim = [json.loads(text) for text in runtime.job_interim_results(job.id)]
    assert interim == [{"iteration": 0}, {"iteration": 1}, {"iteration": 2}]  # oldest first
    assert "hello log line" in runtime.job_logs(job.id)
    assert runtime.job(job.id).params == {"name": "qrt"}
    light = runtime.job(job.id, include_params=False)
    assert light.params is None and light.status == "COMPLETED"


def test_failed_program(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return
    job = runtime.run(upload(runtime, FAILS), {})
    done = wait(runtime, job.id)
    assert done.status == "FAILED"
    text = runtime.job_result(job.id)
    assert "Traceback" in text and "ValueError: deliberate failure 42" in text


def test_jobs_filters_paging_and_tags(runtime: Runtime) -> None:
    tag = unique()
    program_id, inputs = a_job(runtime)
    submitted = [
        runtime.run(program_id, inputs, backend="aer_simulator", tags=[tag, f"n{i}"]).id
        for i in range(3)
    ]
    for job_id in submitted:
        assert wait(runtime, job_id).status == "COMPLETED"
    newest_first = [j.id for j in runtime.jobs(tags=[tag], limit=None)]
    assert sorted(newest_first) == sorted(submitted)
    oldest_first = [j.id for j in runtime.jobs(tags=[tag], limit=None, descending=False)]
    assert oldest_first == list(reversed(newest_first))
    assert oldest_first == submitted
    assert [j.id for j in runtime.jobs(tags=[tag], limit=2)] == newest_first[:2]
    assert [j.id for j in runtime.jobs(tags=[tag], limit=2, skip=2)] == newest_first[2:]
    assert [j.id for j in runtime.jobs(tags=[tag, "n1"])] == [submitted[1]]
    assert len(runtime.jobs(tags=[tag], program_id=program_id)) == 3
    other = "estimator" if program_id == "sampler" else "sampler"
    assert runtime.jobs(tags=[tag], program_id=other) == []
    assert len(runtime.jobs(tags=[tag], pending=False)) == 3
    assert runtime.jobs(tags=[tag], pending=True) == []
    assert len(runtime.jobs(tags=[tag], backend="aer_simulator")) == 3
    assert runtime.jobs(tags=[tag], backend="fake_noisy_5q") == []
    assert user_tags(runtime.job(submitted[2])) == {tag, "n2"}
    assert len(runtime.jobs(limit=None)) >= 3
    # created_after: jobs created at or after the time given (as the runtime reports times).
    created = {job_id: runtime.job(job_id).created for job_id in submitted}
    bound = created[submitted[1]]
    assert bound is not None
    since = {j.id for j in runtime.jobs(tags=[tag], limit=None, created_after=bound)}
    assert submitted[1] in since and since == {i for i, c in created.items() if c and c >= bound}
    later = "9999-01-01T00:00:00Z"
    assert runtime.jobs(tags=[tag], limit=None, created_after=later) == []
    with pytest.raises(RuntimeApiError) as refused:
        runtime.jobs(tags=[tag], created_after="yesterday")
    assert refused.value.status == 400


def test_delete_job(runtime: Runtime) -> None:
    tag = unique()
    program_id, inputs = a_job(runtime)
    job = runtime.run(program_id, inputs, backend="aer_simulator", tags=[tag])
    wait(runtime, job.id)
    runtime.delete_job(job.id)
    with pytest.raises(NotFoundError):
        runtime.job(job.id)
    with pytest.raises(NotFoundError):
        runtime.delete_job(job.id)
    assert runtime.jobs(tags=[tag]) == []


def test_session(runtime: Runtime) -> None:
    tag = unique()
    program_id, inputs = a_job(runtime)
    first = runtime.run(program_id, inputs, backend="aer_simulator", tags=[tag], start_session=True)
    session = first.session_id
    assert session is not None
    if takes_programs(runtime):
        assert session == first.id  # the program API names a session after its first job
    second = runtime.run(
        program_id, inputs, backend="aer_simulator", tags=[tag], session_id=session
    )
    assert second.session_id == session
    for job in (first, second):
        assert wait(runtime, job.id).status == "COMPLETED"
    assert {j.id for j in runtime.jobs(session_id=session)} == {first.id, second.id}
    runtime.close_session(session)


def test_cancel(runtime: Runtime) -> None:
    if not takes_programs(runtime):
        job = runtime.run(*a_job(runtime), backend="aer_simulator")
        assert wait(runtime, job.id).status == "COMPLETED"
        with pytest.raises(ConflictError):  # a final job cannot be cancelled
            runtime.cancel_job(job.id)
        return
    job = runtime.run(upload(runtime, SLEEPS), {"seconds": 60})
    runtime.cancel_job(job.id)
    done = wait(runtime, job.id, timeout=60)
    assert done.status == "CANCELLED"
    with pytest.raises(ConflictError):
        runtime.cancel_job(job.id)


@pytest.mark.slow
def test_ran_too_long(runtime: Runtime) -> None:
    if refuses_programs(runtime):
        return  # only an uploaded program can run too long on purpose
    job = runtime.run(upload(runtime, SLEEPS), {"seconds": 60}, max_execution_time=2)
    done = wait(runtime, job.id, timeout=90)
    assert (done.status, done.reason) == ("CANCELLED", "RAN TOO LONG")


def test_embedded_target_is_its_display_url(embedded_runtime: Runtime, tmp_path: Path) -> None:
    assert embedded_runtime.target.to_json() == {
        "channel": "embedded",
        "url": ".qrt",
        "instance": None,
    }


def test_http_target_is_the_account(http_runtime: Runtime, server: ServerHandle) -> None:
    assert http_runtime.target.to_json() == {
        "channel": "ibm_quantum",
        "url": server.api_url,
        "instance": None,
    }


class LoseFirstSubmitAnswer(httpx.BaseTransport):
    """A real transport that lets the first ``POST /jobs`` reach the server but loses its answer
    (a read timeout, as on a flaky network); with ``hide_lookup`` the first tag lookup that follows
    also comes back empty, so the client re-sends and the server's Idempotency-Key must hold."""

    def __init__(self, *, hide_lookup: bool) -> None:
        self.inner = httpx.HTTPTransport()
        self.hide_lookup = hide_lookup
        self.lost = 0
        self.hidden = 0
        self.posts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        path = request.url.path
        if request.method == "POST" and path.endswith(("/runtime/jobs", "/api/v1/jobs")):
            self.posts += 1
            if not self.lost:
                self.lost += 1
                response.read()
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        if (
            self.hide_lookup
            and not self.hidden
            and request.method == "GET"
            and path.endswith("/jobs")
        ):
            if "tags" in request.url.params:
                self.hidden += 1
                response.read()
                response.close()
                return httpx.Response(200, json={"jobs": [], "count": 0}, request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("hide_lookup", [False, True], ids=["adopted-by-tag", "idempotency-key"])
def test_http_lost_submit_answer_never_makes_a_second_job(
    server: ServerHandle, hide_lookup: bool
) -> None:
    transport = LoseFirstSubmitAnswer(hide_lookup=hide_lookup)
    account = Account("ibm_quantum", server.token, url=server.api_url)
    sleeps: list[float] = []
    with httpx.Client(transport=transport, trust_env=False, timeout=60.0) as client:
        runtime = HttpRuntime(account, client=client, sleep=sleeps.append)
        tag = unique()
        job = runtime.run("sampler", {"pubs": [{"circuit": BELL}]}, tags=[tag])
        assert transport.lost == 1 and len(sleeps) >= 1
        assert transport.posts == (2 if hide_lookup else 1)
        assert [j.id for j in runtime.jobs(tags=[tag], limit=None)] == [job.id]
        assert wait(runtime, job.id).status == "COMPLETED"
        runtime.close()


def test_http_ibm_cloud_channel(server: ServerHandle) -> None:
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789:abcdef::"
    account = Account("ibm_cloud", server.token, url=f"{server.url}/experimental", instance=crn)
    with httpx.Client(trust_env=False, timeout=60.0) as client:
        runtime = HttpRuntime(account, client=client)
        assert runtime.target.to_json() == {
            "channel": "ibm_cloud",
            "url": f"{server.url}/experimental",
            "instance": crn,
        }
        program_id = upload(runtime)
        job = runtime.run(program_id, {"name": "cloud"})
        assert wait(runtime, job.id).status == "COMPLETED"
        assert json.loads(runtime.job_result(job.id)) == {"greeting": "hello cloud"}
        runtime.delete_program(program_id)
        runtime.close()


def test_iqp_target_is_the_account(iqp_runtime: Runtime, server: ServerHandle) -> None:
    assert iqp_runtime.target.to_json() == {
        "channel": "ibm_quantum_platform",
        "url": f"{server.url}/experimental/api/v1",
        "instance": instance_of(server),
    }


@pytest.mark.parametrize("hide_lookup", [False, True], ids=["adopted-by-tag", "server-dedupe"])
def test_iqp_lost_submit_answer_never_makes_a_second_job(
    server: ServerHandle, hide_lookup: bool
) -> None:
    transport = LoseFirstSubmitAnswer(hide_lookup=hide_lookup)
    sleeps: list[float] = []
    with httpx.Client(transport=transport, trust_env=False, timeout=60.0) as client:
        runtime = IqpRuntime(
            platform_account(server),
            client=client,
            sleep=sleeps.append,
            environ={"IAM_URL": server.url},
        )
        tag = unique()
        job = runtime.run(
            "sampler", {"pubs": [{"circuit": BELL}]}, backend="aer_simulator", tags=[tag]
        )
        assert transport.lost == 1 and len(sleeps) >= 1
        assert transport.posts == (2 if hide_lookup else 1)
        assert [j.id for j in runtime.jobs(tags=[tag], limit=None)] == [job.id]
        assert wait(runtime, job.id).status == "COMPLETED"
        runtime.close()


def test_iqp_sessions_in_both_modes_are_closed(iqp_runtime: Runtime) -> None:
    assert isinstance(iqp_runtime, IqpRuntime)
    for mode in ("dedicated", "batch"):
        session = iqp_runtime.open_session("aer_simulator", mode)
        job = iqp_runtime.run(*a_job(iqp_runtime), backend="aer_simulator", session_id=session)
        assert job.session_id == session
        iqp_runtime.close_session(session)
        with pytest.raises(Exception, match="HTTP 4"):  # closed: the session takes no more jobs
            iqp_runtime.run(*a_job(iqp_runtime), backend="aer_simulator", session_id=session)
        assert wait(iqp_runtime, job.id).status == "COMPLETED"  # what it had still runs
