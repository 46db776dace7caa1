"""``qrt users`` and ``qrt serve`` as an operator uses them: tokens printed once and stored hashed,
revocation (also of logged-in sessions), no default user, state that survives a restart, and a
graceful stop on SIGTERM/SIGINT (jobs finish within the grace or are handed over to the next start)."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from qrt_apply.engine.records import JobRecord
from qrt_apply.engine.store import Store

from projects import BELL
from support.serve import ServerHandle, run_qrt, running_server

PROGRAM = """
def main(backend, user_messenger, **kwargs):
    user_messenger.publish("halfway")
    return {"got": kwargs}
"""

# Sleeps ``seconds``, or until the wall-clock time ``until``: a re-run after a restart then only
# sleeps what is left, and the test needs no state shared with the (perhaps sandboxed) program.
SLEEPER = """
import time

def main(backend, user_messenger, seconds=0.0, until=0.0):
    user_messenger.publish("started")
    time.sleep(max(seconds, until - time.time()))
    return {"seconds": seconds, "until": until}
"""


def test_users_create_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = run_qrt("users", "create", "alice", "--data-dir", str(data))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert len(token) >= 32 and "shown only this once" in created.stderr

    listed = run_qrt("users", "list", "--data-dir", str(data), "--json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["tokens"]) for row in rows] == [("alice", 1)]
    assert token not in listed.stdout
    for db in data.iterdir():  # the token is nowhere on disk in clear
        assert token.encode() not in db.read_bytes()

    again = run_qrt("users", "create", "alice", "--data-dir", str(data))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run_qrt("users", "create", "bad name!", "--data-dir", str(data)).returncode == 1
    second = run_qrt("users", "token", "alice", "--data-dir", str(data))
    assert second.returncode == 0 and second.stdout.strip() != token
    assert (
        json.loads(run_qrt("users", "list", "--data-dir", str(data), "--json").stdout)[0]["tokens"]
        == 2
    )
    missing = run_qrt("users", "revoke", "nobody", "--data-dir", str(data))
    assert missing.returncode == 1 and "nobody" in missing.stderr


def test_users_commands_need_an_existing_data_dir(tmp_path: Path) -> None:
    answer = run_qrt("users", "list", "--data-dir", str(tmp_path / "none"))
    assert answer.returncode == 1 and "users create" in answer.stderr


def test_a_fresh_server_has_no_user_and_says_how_to_create_one(tmp_path: Path) -> None:
    with running_server(tmp_path, users=()) as server:
        with httpx.Client(trust_env=False) as http:
            login = http.post(f"{server.api_url}/users/loginWithToken", json={"apiToken": ""})
            assert login.status_code in (400, 401)
        assert "no users yet" in server.log() and "users create" in server.log()


def test_revoke_ends_api_tokens_and_logged_in_sessions(tmp_path: Path) -> None:
    with running_server(tmp_path, users=("alice", "bob")) as server:
        access = server.login("alice")
        runtime = f"{server.runtime_url}/programs"
        with httpx.Client(trust_env=False) as http:
            assert http.get(runtime, headers={"X-Access-Token": access}).status_code == 200
            revoked = run_qrt("users", "revoke", "alice", "--data-dir", str(server.data_dir))
            assert revoked.returncode == 0, revoked.stderr
            assert http.get(runtime, headers={"X-Access-Token": access}).status_code == 401
            login = http.post(
                f"{server.api_url}/users/loginWithToken", json={"apiToken": server.tokens["alice"]}
            )
            assert login.status_code == 401
            assert server.login("bob")  # other users are untouched


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with running_server(tmp_path, users=("alice",)) as server:
        access = server.login()
        headers = {"X-Access-Token": access}
        with httpx.Client(base_url=server.runtime_url, trust_env=False, headers=headers) as http:
            body = {
                "name": "persisted",
                "data": base64.b64encode(PROGRAM.encode()).decode(),
                "cost": 60,
                "description": "survives",
            }
            program = http.post("/programs", content=json.dumps(body)).json()["id"]
            job = http.post(
                "/jobs",
                content=json.dumps({"program_id": program, "params": {"x": 1}, "tags": ["keep"]}),
                headers={"Idempotency-Key": "restart-key"},
            ).json()["id"]
            deadline = time.monotonic() + 60
            while http.get(f"/jobs/{job}").json()["state"]["status"] != "COMPLETED":
                assert time.monotonic() < deadline
                time.sleep(0.05)

        server.restart()

        # the access token from before the restart is still valid, and so is the API token
        with httpx.Client(base_url=server.runtime_url, trust_env=False, headers=headers) as http:
            got = http.get(f"/programs/{program}").json()
            assert (got["name"], got["data"]) == ("persisted", PROGRAM)
            finished = http.get(f"/jobs/{job}").json()
            assert finished["state"]["status"] == "COMPLETED" and finished["tags"] == ["keep"]
            assert json.loads(http.get(f"/jobs/{job}/results").text) == {"got": {"x": 1}}
            assert http.get(f"/jobs/{job}/interim_results").json() == ['"halfway"']
            replay = http.post(
                "/jobs",
                content=json.dumps({"program_id": program, "params": {"x": 1}, "tags": ["keep"]}),
                headers={"Idempotency-Key": "restart-key"},
            )
            assert replay.status_code == 200 and replay.json()["id"] == job
            assert http.get("/jobs").json()["count"] == 1
        assert server.login()


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with running_server(tmp_path, users=()) as server:
        busy = run_qrt(
            "serve", "--port", str(server.port), "--data-dir", str(tmp_path / "other"), timeout=60
        )
    assert busy.returncode == 1 and "cannot listen" in busy.stderr


@pytest.mark.parametrize("flag", ["--ssl-certfile"])
def test_serve_needs_both_tls_files(tmp_path: Path, flag: str) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a cert")
    answer = run_qrt("serve", flag, str(cert), "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert answer.returncode == 1 and "go together" in answer.stderr


def test_server_db_keeps_only_hashes_of_access_tokens(tmp_path: Path) -> None:
    with running_server(tmp_path, users=("alice",)) as server:
        access = server.login()
        with closing(sqlite3.connect(server.data_dir / "server.db")) as db:
            hashes = [row[0] for row in db.execute("SELECT token_hash FROM access_tokens")]
    assert hashes and access not in hashes and all(len(h) == 64 for h in hashes)


# -- stopping the server ----------------------------------------------------------------------


def _wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout} s"
        time.sleep(0.05)


def _start_job(http: httpx.Client, program: str, params: dict[str, float]) -> str:
    answer = http.post("/jobs", content=json.dumps({"program_id": program, "params": params}))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _upload_sleeper(http: httpx.Client) -> str:
    body = {
        "name": "sleeper",
        "data": base64.b64encode(SLEEPER.encode()).decode(),
        "cost": 120,
        "description": "sleeps",
    }
    answer = http.post("/programs", content=json.dumps(body))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _status(http: httpx.Client, job: str) -> str:
    return str(http.get(f"/jobs/{job}").json()["state"]["status"])


def _stored(data_dir: Path, job: str) -> tuple[JobRecord, str]:
    """The job's row and result text, read straight from the data directory."""
    store = Store(data_dir / "runtime.db")
    try:
        record = store.get_job(job)
        assert record is not None
        return record, store.job_text(job, "result")
    finally:
        store.close()


def _signal_and_wait(server: ServerHandle, sig: signal.Signals) -> int:
    """Send ``sig`` to qrt serve and return its exit status (it must exit within 90 s)."""
    assert server.process is not None
    server.process.send_signal(sig)
    status = server.process.wait(timeout=90)
    server.stop()  # only bookkeeping now: closes the log, kills any leftover of the group
    return status


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_signal_lets_a_running_job_finish_within_the_grace(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # A grace far longer than the job: it must finish, whatever the machine's load.
    with running_server(tmp_path, extra_args=("--shutdown-grace", "60")) as server:
        with server.client() as http:
            job = _start_job(http, _upload_sleeper(http), {"seconds": 1.5})
            _wait_until(lambda: http.get(f"/jobs/{job}/interim_results").json(), 60, "job running")
        assert _signal_and_wait(server, sig) == 0, server.log()
        assert "stopped; 0 unfinished job(s) queued" in server.log()
        before, result = _stored(server.data_dir, job)
        assert before.status == "COMPLETED", server.log()
        assert json.loads(result) == {"seconds": 1.5, "until": 0.0}

        server.start()  # recovery runs before the server listens: a re-run would show by now
        with server.client() as http:
            assert _status(http, job) == "COMPLETED"
        after, result_after = _stored(server.data_dir, job)
        assert (after.status, after.ended, result_after) == ("COMPLETED", before.ended, result)


@pytest.mark.slow
def test_a_job_longer_than_the_grace_is_handed_over_and_completes_once_after_restart(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, extra_args=("--shutdown-grace", "0.5")) as server:
        with server.client() as http:
            program = _upload_sleeper(http)
            quick = _start_job(http, program, {"seconds": 0})
            _wait_until(lambda: _status(http, quick) == "COMPLETED", 60, "quick job done")
            # 20 s of margin between the submission and the hand-over, which comes right after
            # the signal plus 0.5 s of grace
            slow = _start_job(http, program, {"until": time.time() + 20})
            _wait_until(lambda: http.get(f"/jobs/{slow}/interim_results").json(), 15, "running")
        assert _signal_and_wait(server, signal.SIGTERM) == 0, server.log()
        handed, text = _stored(server.data_dir, slow)
        assert (handed.status, handed.runner) == ("QUEUED", None), text
        assert "stopped; 1 unfinished job(s) queued" in server.log()
        quick_before, quick_result = _stored(server.data_dir, quick)
        assert quick_before.status == "COMPLETED"

        server.start()
        with server.client() as http:
            _wait_until(lambda: _status(http, slow) == "COMPLETED", 90, "handed-over job done")
            # the interrupted run's interim results went with it: exactly one run's worth
            assert http.get(f"/jobs/{slow}/interim_results").json() == ['"started"']
        quick_after, quick_result_after = _stored(server.data_dir, quick)
        assert (quick_after.ended, quick_result_after) == (quick_before.ended, quick_result)


@pytest.mark.slow
def test_a_second_stop_signal_cuts_the_grace_short(tmp_path: Path) -> None:
    with running_server(tmp_path, extra_args=("--shutdown-grace", "600")) as server:
        with server.client() as http:
            # 20 s of margin: without the second signal the server would wait for this job
            job = _start_job(http, _upload_sleeper(http), {"until": time.time() + 20})
            _wait_until(lambda: http.get(f"/jobs/{job}/interim_results").json(), 15, "running")
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        _wait_until(lambda: "stopping; running jobs get" in server.log(), 60, "grace begun")
        assert _signal_and_wait(server, signal.SIGINT) == 0, server.log()
        handed, _ = _stored(server.data_dir, job)
        assert (handed.status, handed.runner) == ("QUEUED", None), server.log()


def test_serve_says_at_start_that_uploaded_programs_are_sandboxed(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert "uploaded programs run in sandboxes" in server.log()


def test_without_a_sandbox_uploaded_programs_are_refused_and_built_ins_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QRT_BWRAP", "/nonexistent/bwrap")  # as on a machine without namespaces
    with running_server(tmp_path) as server:
        assert "uploaded programs are refused" in server.log()
        assert "--unsafe-no-sandbox" in server.log()
        with server.client() as http:
            body = {"program_id": _upload_sleeper(http), "params": {"seconds": 0}}
            answer = http.post("/jobs", content=json.dumps(body))
            assert answer.status_code == 403, answer.text
            assert "--unsafe-no-sandbox" in answer.json()["error"]["message"]
            job = _start_job(http, "sampler", {"pubs": [[BELL]]})
            _wait_until(lambda: _status(http, job) == "COMPLETED", 120, "sampler job done")


def test_unsafe_no_sandbox_says_so_and_runs_uploaded_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QRT_BWRAP", "/nonexistent/bwrap")
    with running_server(tmp_path, extra_args=("--unsafe-no-sandbox",)) as server:
        assert "WARNING: --unsafe-no-sandbox" in server.log()
        with server.client() as http:
            job = _start_job(http, _upload_sleeper(http), {"seconds": 0})
            _wait_until(lambda: _status(http, job) == "COMPLETED", 120, "program job done")
