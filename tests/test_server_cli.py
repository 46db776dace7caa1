"""``qrt users`` and ``qrt serve`` as an operator uses them: tokens printed once and stored hashed,
revocation (also of logged-in sessions), no default user, and state that survives a restart."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from support.serve import run_qrt, running_server

PROGRAM = """
def main(backend, user_messenger, **kwargs):
    user_messenger.publish("halfway")
    return {"got": kwargs}
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
