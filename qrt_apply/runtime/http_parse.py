"""Wire objects of the REST API (reference §3) turned into the plain data of ``runtime/base.py``.

Lenient like the real client: only ``id``/``name`` (programs) and ``id``/``state.status`` (jobs) are
required; everything else has a default. Job statuses are upper-cased.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qrt_apply.errors import RuntimeApiError
from qrt_apply.runtime.base import BackendInfo, JobInfo, ProgramInfo

__all__ = ["parse_backend", "parse_interim", "parse_job", "parse_program"]


def _str_or_none(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def parse_program(data: Any) -> ProgramInfo:
    if not isinstance(data, Mapping) or "id" not in data or "name" not in data:
        raise RuntimeApiError("the runtime sent a program without 'id' and 'name'")
    spec = data.get("spec")
    return ProgramInfo(
        id=str(data["id"]),
        name=str(data["name"]),
        description=str(data.get("description") or ""),
        max_execution_time=int(data.get("cost") or 0),
        spec=dict(spec) if isinstance(spec, Mapping) else {},
        is_public=bool(data.get("is_public", False)),
        data=_str_or_none(data.get("data")),
        creation_date=_str_or_none(data.get("creation_date")),
        update_date=_str_or_none(data.get("update_date")),
        data_digest=_str_or_none(data.get("data_digest")),
    )


def _params(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return dict(value) if isinstance(value, Mapping) else None


def parse_job(data: Any) -> JobInfo:
    if not isinstance(data, Mapping) or "id" not in data:
        raise RuntimeApiError("the runtime sent a job without 'id'")
    state: Mapping[str, Any] = data["state"] if isinstance(data.get("state"), Mapping) else {}
    status = str(state.get("status") or data.get("status") or "").upper()
    if not status:
        raise RuntimeApiError(f"the runtime sent job {data['id']} without 'state.status'")
    program: Mapping[str, Any] = data["program"] if isinstance(data.get("program"), Mapping) else {}
    tags: list[Any] = data["tags"] if isinstance(data.get("tags"), list) else []
    return JobInfo(
        id=str(data["id"]),
        program_id=str(program.get("id") or data.get("program_id") or ""),
        status=status,
        backend=_str_or_none(data.get("backend")),
        reason=_str_or_none(state.get("reason")),
        created=_str_or_none(data.get("created")),
        started=_str_or_none(data.get("started")),
        ended=_str_or_none(data.get("ended")),
        session_id=_str_or_none(data.get("session_id")),
        tags=tuple(str(tag) for tag in tags),
        params=_params(data.get("params")) if "params" in data else None,
    )


def parse_interim(text: str) -> list[str]:
    """The body of ``/interim_results`` (a JSON array, newest first) as JSON texts, oldest first."""
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    if not isinstance(value, list):
        return [text]
    return [item if isinstance(item, str) else json.dumps(item) for item in reversed(value)]


def parse_backend(name: str, config: Any, status: Any) -> BackendInfo:
    """A backend from its ``/configuration`` and ``/status`` answers."""
    config = config if isinstance(config, Mapping) else {}
    status = status if isinstance(status, Mapping) else {}
    simulator = bool(config.get("simulator", True))
    return BackendInfo(
        name=name,
        num_qubits=int(config.get("n_qubits") or config.get("num_qubits") or 0),
        simulator=simulator,
        noisy=bool(config.get("noisy", not simulator)),
        operational=bool(status.get("state", True)),
        # qrt serve (which adds "noisy") enforces its max_shots; IBM documents its own as no
        # longer enforced, so it is not taken as a limit.
        max_shots=_positive(config.get("max_shots")) if "noisy" in config else None,
    )


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
