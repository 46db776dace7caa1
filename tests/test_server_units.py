"""Unit tests of the HTTP server's pure pieces: public surfaces, error-to-status mapping, source
decoding, wire shapes, and the server DB (access tokens, idempotency records)."""

from __future__ import annotations

import base64
import importlib
import time
from pathlib import Path

import pytest

from qrt_apply.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    RuntimeApiError,
)
from qrt_apply.runtime.base import JobInfo, ProgramInfo
from qrt_apply.server.app import status_for
from qrt_apply.server.routes_programs import decode_source
from qrt_apply.server.serverdb import ServerDB
from qrt_apply.server.wire import job_to_wire, program_to_wire

MODULES = [
    "app",
    "auth",
    "cli",
    "context",
    "iam",
    "routes_jobs",
    "routes_misc",
    "routes_programs",
    "routes_v1",
    "routes_v1_jobs",
    "serverdb",
    "wire",
]


@pytest.mark.parametrize("name", MODULES)
def test_public_surface_exists_and_module_is_documented(name: str) -> None:
    module = importlib.import_module(f"qrt_apply.server.{name}")
    assert module.__doc__ and module.__doc__.strip()
    assert module.__all__ and all(hasattr(module, item) for item in module.__all__)


def test_server_cli_module_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, qrt_apply.server.cli; "
        "print(sorted(m for m in ('uvicorn', 'starlette', 'qiskit', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AuthError("x"), 401),
        (NotFoundError("x"), 404),
        (ConflictError("x"), 409),
        (RuntimeApiError("x"), 400),
        (RuntimeApiError("x", status=403), 403),
        (RuntimeApiError("x", status=413), 413),
        (RuntimeApiError("x", status=200), 400),  # never a success for an error
        (ConfigError("x"), 400),
    ],
)
def test_status_for_errors(error: Exception, status: int) -> None:
    assert status_for(error) == status  # type: ignore[arg-type]


def test_decode_source_accepts_base64_with_whitespace_and_refuses_the_rest() -> None:
    source = "def main(backend, user_messenger, **kw):\n    return 'é'\n"
    encoded = base64.b64encode(source.encode()).decode()
    assert decode_source(encoded) == source
    assert decode_source("\n".join([encoded[:10], encoded[10:]]) + "\n") == source
    for bad in (
        "not base64!",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b"  ").decode(),
    ):
        with pytest.raises(RuntimeApiError) as caught:
            decode_source(bad)
        assert caught.value.status == 400


def test_wire_shapes() -> None:
    program = ProgramInfo(id="p-1", name="p", max_execution_time=30, data="src", is_public=True)
    assert "data" not in program_to_wire(program)
    assert program_to_wire(program, with_data=True)["data"] == "src"
    assert program_to_wire(program)["cost"] == 30
    job = JobInfo(
        id="j", program_id="p-1", status="CANCELLED", reason="RAN TOO LONG", params={"a": 1}
    )
    wire = job_to_wire(job)
    assert wire["state"] == {"status": "CANCELLED", "reason": "RAN TOO LONG"}
    assert wire["program"] == {"id": "p-1"} and "params" not in wire
    assert (wire["hub"], wire["group"], wire["project"]) == ("ibm-q", "open", "main")
    assert job_to_wire(job, include_params=True)["params"] == {"a": 1}


def test_server_db_access_tokens_expire_and_revoke(tmp_path: Path) -> None:
    db = ServerDB(tmp_path / "server.db")
    try:
        token, _ = db.issue_access_token("u1", ttl=3600)
        short, _ = db.issue_access_token("u1", ttl=0)
        other, _ = db.issue_access_token("u2")
        assert db.user_for_access_token(token) == "u1"
        time.sleep(0.01)
        assert db.user_for_access_token(short) is None
        assert db.user_for_access_token("nope") is None
        assert db.revoke_access_tokens("u1") >= 1
        assert db.user_for_access_token(token) is None
        assert db.user_for_access_token(other) == "u2"
    finally:
        db.close()
    reopened = ServerDB(tmp_path / "server.db")  # survives reopening (a restart)
    try:
        assert reopened.user_for_access_token(other) == "u2"
    finally:
        reopened.close()


def test_server_db_idempotency_records(tmp_path: Path) -> None:
    db = ServerDB(tmp_path / "server.db")
    try:
        assert db.idempotent_get("u1", "k") is None
        db.idempotent_put("u1", "k", "hash-1", {"id": "j1", "backend": "aer_simulator"})
        record = db.idempotent_get("u1", "k")
        assert record is not None and record.response["id"] == "j1"
        assert record.request_hash == "hash-1"
        assert db.idempotent_get("u2", "k") is None  # keys are per owner
    finally:
        db.close()


def test_iam_jwt_carries_the_access_token_and_its_lifetime() -> None:
    import base64
    import json

    from qrt_apply.server.iam import access_from_jwt, make_jwt

    token = make_jwt("secret-access", "user-1", 1000.5, 3600)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iat"] == 1000 and claims["exp"] == 4600 and claims["sub"] == "user-1"
    assert json.loads(base64.urlsafe_b64decode(header + "==="))["alg"] == "none"
    assert signature == "" and access_from_jwt(token) == "secret-access"
    for junk in ("", "abc", "a.b.c", "a.!!!.c", "a." + "x" * 5000 + ".", "a.bnVsbA.", "a.W10."):
        assert access_from_jwt(junk) is None


def test_instance_crn_is_stable_distinct_and_ibm_shaped() -> None:
    import re

    from qrt_apply.server.iam import instance_crn

    crn = instance_crn("user-abc")
    assert crn == instance_crn("user-abc") != instance_crn("user-abd")
    # the client's parse: at least 7 colon-separated fields, region in the 6th, cname in the 3rd
    match = re.fullmatch(r"(.*?):(.*?):(.*?):(.*?):(.*?):(.*?):.*", crn)
    assert match is not None and match.group(6) == "us-east" and match.group(3) == "bluemix"
    assert crn.startswith("crn:v1:bluemix:public:quantum-computing:us-east:a/")


def test_v1_job_states_are_ibms() -> None:
    from qrt_apply.runtime.base import JobInfo
    from qrt_apply.server.routes_v1_jobs import v1_job

    def job(status: str, reason: str | None = None) -> JobInfo:
        return JobInfo(id="j", program_id="sampler", status=status, backend="b", reason=reason)

    assert v1_job(job("QUEUED"), "u")["state"] == {"status": "Queued"}
    assert v1_job(job("COMPLETED"), "u")["status"] == "Completed"
    assert v1_job(job("FAILED", "boom"), "u")["state"] == {"status": "Failed", "reason": "boom"}
    too_long = v1_job(job("CANCELLED", "RAN TOO LONG"), "u")["state"]
    assert too_long == {"status": "Cancelled", "reason": "Ran too long", "reason_code": 1305}
    assert "params" not in v1_job(job("RUNNING"), "u")
    assert v1_job(job("RUNNING"), "u", include_params=True)["params"] == {}
