"""IBM Quantum Platform v1 API (``/api/v1``): backends, instance usage and sessions; the jobs are
``routes_v1_jobs.py``. Mounted at ``/api/v1`` and ``/experimental/api/v1`` (the client's ``url``
containing ``experimental`` is used as the API base as it is).

Shapes from ``shared/reference/iqp-rest-api.md``:

* ``GET /backends``: ``{"devices": [{"name", "status", "qubits", ...}]}``; clients older than
  ``IBM-API-Version: 2025-05-01`` get plain names.
* ``GET /backends/{name}/configuration``: IBM's configuration with ``simulator: false`` (so that
  ``Session`` and ``Batch`` open real sessions) and one ``gates`` entry per basis gate with its
  ``parameters``, ``qasm_def`` and per-gate ``coupling_map`` (the client builds its Target from
  these, not from the top-level ``coupling_map``). ``properties`` of the noisy device are the
  calibration it is simulated with (the client's transpiler then sees its real error rates); a
  noiseless simulator has none (``{}``).
* ``POST /sessions {"mode", "backend", "instance"?, "max_ttl"?}`` -> the session object;
  ``PATCH /sessions/{id} {"accepting_jobs": false}`` closes it (204); ``DELETE
  /sessions/{id}/close`` closes it and cancels its unfinished jobs (204).

Every route authenticates (``auth.authenticate``: the IAM bearer token) and checks a
``Service-CRN`` header against the caller's instance (``iam.instance_crn``).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qrt_apply.engine import backends
from qrt_apply.errors import RuntimeApiError
from qrt_apply.server.auth import authenticate
from qrt_apply.server.context import call, context
from qrt_apply.server.iam import PLAN_ID, instance_crn
from qrt_apply.server.routes_misc import known_backend
from qrt_apply.server.wire import (
    bad_request,
    field_bool,
    field_int,
    field_str,
    no_content,
    read_json,
)

__all__ = ["V1_ROUTES", "ibm_configuration", "ibm_properties", "v1_user"]

_DEVICE_OBJECTS_SINCE = "2025-05-01"  # IBM-API-Version from which /backends lists objects
_SESSION_MODES = ("batch", "dedicated")
_DEFAULT_TTL = 28800  # seconds: IBM's max_ttl when the client gives none
_NOT_GATES = ("measure", "reset", "delay")
_PROPERTIES_DATE = "2023-01-01T00:00:00Z"  # the devices' calibration never changes


async def v1_user(request: Request) -> str:
    """The caller's user id; 403 when a ``Service-CRN`` header names another instance."""
    user = await authenticate(request)
    crn = request.headers.get("service-crn")
    if crn and crn.strip() != instance_crn(user):
        raise RuntimeApiError(
            "Service-CRN is not an instance of this user (see 'qrt users list --json')", status=403
        )
    return user


async def _backend_of(request: Request) -> str:
    """The backend a ``/backends/{name}/...`` request names, once the caller is authenticated;
    404 for one that does not exist."""
    await v1_user(request)
    return known_backend(request.path_params["name"])


@functools.cache
def _gate_parameters() -> dict[str, tuple[int, tuple[str, ...]]]:
    """Standard gate name -> (qubits, parameter names), from qiskit (imported once, here)."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    out: dict[str, tuple[int, tuple[str, ...]]] = {}
    for name, gate in get_standard_gate_name_mapping().items():
        params = tuple(str(p) for p in gate.params)
        out[name] = (gate.num_qubits, params)
    return out


@functools.cache
def ibm_configuration(name: str) -> dict[str, Any]:
    """Backend ``name``'s configuration as IBM serves it to the current client."""
    config = dict(backends.configuration(name))
    n = int(config["n_qubits"])
    edges = config.get("coupling_map")
    known = _gate_parameters()
    gates: list[dict[str, Any]] = []
    basis: list[str] = []
    for gate in config["basis_gates"]:
        if gate in _NOT_GATES or gate not in known:
            continue  # measure/reset/delay are instructions; variable-width gates have no entry
        width, params = known[gate]
        entry: dict[str, Any] = {"name": gate, "parameters": list(params), "qasm_def": ""}
        if width == 1:
            entry["coupling_map"] = [[q] for q in range(n)]
        elif width == 2 and edges:
            entry["coupling_map"] = [list(edge) for edge in edges]
        elif edges:
            continue  # a three-qubit gate on a coupled device is not native
        gates.append(entry)
        basis.append(gate)
    config.update(
        basis_gates=basis,
        gates=gates,
        simulator=False,
        supported_instructions=[*basis, "measure", "reset", "delay"],
    )
    config.pop("noisy", None)
    return config


async def list_backends(request: Request) -> Response:
    await v1_user(request)
    infos = await call(context(request).service.backends)
    if request.headers.get("ibm-api-version", _DEVICE_OBJECTS_SINCE) < _DEVICE_OBJECTS_SINCE:
        return JSONResponse({"devices": [info.name for info in infos]})
    devices = [
        {
            "name": info.name,
            "status": {"name": "online", "reason": "available"},
            "qubits": info.num_qubits,
            "physical_qubits": info.num_qubits,
            "queue_length": 0,
            "processor_type": {"family": "qrt simulator", "revision": 1},
        }
        for info in infos
    ]
    return JSONResponse({"devices": devices})


async def backend_configuration(request: Request) -> Response:
    name = await _backend_of(request)
    return JSONResponse(await call(ibm_configuration, name))


async def backend_status(request: Request) -> Response:
    name = await _backend_of(request)
    status = dict(backends.status(name))
    status["message"] = "available"
    return JSONResponse(status)


def _nduv(name: str, unit: str, value: float) -> dict[str, Any]:
    return {"date": _PROPERTIES_DATE, "name": name, "unit": unit, "value": value}


@functools.cache
def ibm_properties(name: str) -> dict[str, Any]:
    """Backend ``name``'s calibration in IBM's properties form: for a noisy device the very error
    rates, durations, T1/T2 and frequencies it is simulated with; ``{}`` (none) for a noiseless
    simulator."""
    device = backends.noisy_device(name)
    if device is None:
        return {}
    target = device.target
    qubits = []
    for q, props in enumerate(target.qubit_properties or []):
        readout = target["measure"][(q,)]
        qubits.append(
            [
                _nduv("T1", "us", props.t1 * 1e6),
                _nduv("T2", "us", props.t2 * 1e6),
                _nduv("frequency", "GHz", props.frequency / 1e9),
                _nduv("readout_error", "", readout.error),
                _nduv("readout_length", "ns", readout.duration * 1e9),
            ]
        )
    gates = []
    for gate in target.operation_names:
        if gate in _NOT_GATES:
            continue
        for qargs, props in target[gate].items():
            if qargs is None or props is None:
                continue
            gates.append(
                {
                    "qubits": list(qargs),
                    "gate": gate,
                    "name": gate + "_".join(str(q) for q in qargs),
                    "parameters": [
                        _nduv("gate_error", "", props.error or 0.0),
                        _nduv("gate_length", "ns", (props.duration or 0.0) * 1e9),
                    ],
                }
            )
    return {
        "backend_name": name,
        "backend_version": ibm_configuration(name)["backend_version"],
        "last_update_date": _PROPERTIES_DATE,
        "qubits": qubits,
        "gates": gates,
        "general": [],
    }


async def backend_properties(request: Request) -> Response:
    name = await _backend_of(request)
    return JSONResponse(await call(ibm_properties, name))


async def backend_empty(request: Request) -> Response:
    await _backend_of(request)
    return JSONResponse({})


async def instance_usage(request: Request) -> Response:
    user = await v1_user(request)
    return JSONResponse(
        {
            "instance_id": instance_crn(user),
            "plan_id": PLAN_ID,
            "usage_consumed_seconds": 0,
            "usage_limit_reached": False,
        }
    )


async def _session_wire(request: Request, user: str, session_id: str) -> dict[str, Any]:
    ctx = context(request)
    session = await call(ctx.service.session, user, session_id)
    mode = await call(ctx.db.session_mode, session_id, user)
    jobs, total = await call(ctx.service.jobs, user, session_id=session_id, limit=1)  # newest
    _, npending = await call(ctx.service.jobs, user, session_id=session_id, pending=True, limit=1)
    accepting = session.closed is None
    if accepting:
        state = "active" if npending else ("inactive" if total else "open")
    else:
        state = "pending_closed" if npending else "closed"
    last = jobs[0] if jobs else None
    timestamps = [{"status": "open", "timestamp": session.created}]
    if session.closed:
        timestamps.append({"status": "closed", "timestamp": session.closed})
    ttl = session.max_time or _DEFAULT_TTL
    return {
        "id": session.id,
        "backend_name": mode.backend if mode else None,
        "mode": mode.mode if mode else "dedicated",
        "instance": instance_crn(user),
        "state": state,
        "accepting_jobs": accepting,
        "max_ttl": ttl,
        "active_ttl": ttl,
        "interactive_ttl": 60,
        "started_at": session.created,
        "activated_at": session.created if total else None,
        "closed_at": session.closed,
        "last_job_started": last.started if last else None,
        "last_job_completed": last.ended if last else None,
        "elapsed_time": 0,
        "user_id": user,
        "timestamps": timestamps,
    }


async def create_session(request: Request) -> Response:
    user = await v1_user(request)
    body = await read_json(request)
    mode = field_str(body, "mode") or "dedicated"
    if mode not in _SESSION_MODES:
        raise bad_request(f"'mode' must be one of {', '.join(_SESSION_MODES)}")
    backend = field_str(body, "backend", required=True)
    assert backend is not None
    if backend not in backends.BACKEND_NAMES:
        raise bad_request(f"unknown backend {backend!r}")
    instance = field_str(body, "instance")
    if instance and instance != instance_crn(user):
        raise RuntimeApiError("'instance' is not an instance of this user", status=403)
    max_ttl = field_int(body, "max_ttl", minimum=1)
    ctx = context(request)
    session = await call(ctx.service.open_session, user, max_time=max_ttl)
    await call(ctx.db.put_session_mode, session.id, user, mode, backend)
    return JSONResponse(await _session_wire(request, user, session.id))


async def get_session(request: Request) -> Response:
    user = await v1_user(request)
    return JSONResponse(await _session_wire(request, user, request.path_params["session_id"]))


async def patch_session(request: Request) -> Response:
    user = await v1_user(request)
    body = await read_json(request, allow_empty=True)
    service = context(request).service
    session_id = request.path_params["session_id"]
    if field_bool(body, "accepting_jobs", True):
        await call(service.session, user, session_id)  # still 404 for someone else's
    else:
        await call(service.close_session, user, session_id)
    return no_content()


async def cancel_session(request: Request) -> Response:
    user = await v1_user(request)
    await call(context(request).service.cancel_session, user, request.path_params["session_id"])
    return no_content()


V1_ROUTES = [
    Route("/backends", list_backends, methods=["GET"]),
    Route("/backends/{name}/configuration", backend_configuration, methods=["GET"]),
    Route("/backends/{name}/status", backend_status, methods=["GET"]),
    Route("/backends/{name}/properties", backend_properties, methods=["GET"]),
    Route("/backends/{name}/defaults", backend_empty, methods=["GET"]),
    Route("/instances/usage", instance_usage, methods=["GET"]),
    Route("/sessions", create_session, methods=["POST"]),
    Route("/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/sessions/{session_id}", patch_session, methods=["PATCH"]),
    Route("/sessions/{session_id}/close", cancel_session, methods=["DELETE"]),
]
