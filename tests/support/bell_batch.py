"""The Bell-pair job batch of the fault and kill tests, and how they read what came of it: the jobs
a ``qrt serve`` holds, the job ids in ``qrt.lock``, and the shots a recorded result counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from support.serve import ServerHandle

__all__ = ["bell_jobs", "lock_ids", "server_jobs", "shots_of"]


def bell_jobs(count: int, version: int) -> str:
    """The items of a JobBatch's ``jobs:`` (YAML, two-space indent): sampler jobs ``j-1`` ...
    ``j-{count}`` on ``../circuits/bell.qasm``, job ``i`` with ``100 * version + i`` shots, so that
    each version is new work for every job and a job's shots name its (address, version)."""
    return "".join(
        f"""
  - name: j-{i}
    inputs:
      pubs:
        - circuit: {{$file: ../circuits/bell.qasm}}
          shots: {100 * version + i}
"""
        for i in range(1, count + 1)
    )


def server_jobs(server: ServerHandle) -> list[dict[str, Any]]:
    """Every job on the server, with its params, read straight from it (page after page)."""
    jobs: list[dict[str, Any]] = []
    with server.client() as http:
        while True:
            page = http.get(
                "/jobs", params={"limit": 1000, "offset": len(jobs), "exclude_params": "false"}
            ).json()
            jobs.extend(page["jobs"])
            if not page["jobs"] or len(jobs) >= page["count"]:
                return jobs


def lock_ids(records: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The job ids ``qrt.lock``'s job records hold, as their job or in their history."""
    return {
        entry["id"]
        for record in records.values()
        for entry in [record, *(record.get("history") or [])]
        if entry.get("id")
    }


def shots_of(record: Mapping[str, Any]) -> int:
    """The shots a recorded sampler result counted (checked against its counts)."""
    data = record["result"]["results"][0]["data"]["c"]
    assert set(data["counts"]) <= {"00", "11"}, data  # a Bell pair, whatever the shots
    assert sum(data["counts"].values()) == data["num_shots"]
    return int(data["num_shots"])
