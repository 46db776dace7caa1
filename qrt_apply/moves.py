"""Refactoring without reruns: renaming and dropping entries of ``qrt.lock``.

A job's digest does not cover its address, so a job whose batch (or itself) was renamed computes
exactly what its recorded run computed; moving its entry to the new address keeps that run instead
of running it again. Three ways in:

* ``qrt mv OLD NEW`` moves entries at once (``program.A program.B``, ``job.B/J job.C/K``, or
  ``batch.A batch.B``: every ``job.A/…`` to ``job.B/…``);
* a ``Moved`` manifest (``from:``/``to:``, like Terraform's ``moved`` blocks) makes the plan show
  ``move`` actions, which apply carries out, in every checkout and environment;
* ``qrt forget ADDR`` drops entries (``batch.NAME``: all its jobs) and leaves the runtime alone.

A moved program keeps its runtime id; the plan then renames it on the runtime (an ``update`` of its
name). Moved jobs get their new ``batch``; jobs that ran a moved program name the new one. Everything
here is pure: it takes the lockfile's data and returns steps or new data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qrt_apply.errors import ConfigError, PlanError
from qrt_apply.model import MoveSpec

__all__ = [
    "Rename",
    "Step",
    "address_kind",
    "apply_steps",
    "forget_steps",
    "move_steps",
    "planned_renames",
    "rename_steps",
]

_NAME = "[a-z0-9][a-z0-9-]{0,62}"
_ADDRESS = re.compile(rf"^(?:(program|batch)\.{_NAME}|(job)\.{_NAME}/{_NAME})$")

Rename = tuple[str, str, str]  # (section, old address, new address) of one entry
Step = tuple[str, str, "dict[str, Any] | None"]  # (section, address, new record or None: removed)


def address_kind(address: str) -> str:
    """``program``, ``batch`` or ``job``; a ConfigError for anything else."""
    found = _ADDRESS.fullmatch(address)
    if found is None:
        raise ConfigError(
            f"{address!r} is not an address (program.NAME, batch.NAME or job.BATCH/JOB)"
        )
    return found.group(1) or found.group(2)


def _renames(data: Mapping[str, Any], source: str, dest: str) -> list[Rename]:
    """The entries of ``data`` at ``source``, each with its address under ``dest``."""
    kind = address_kind(source)
    if address_kind(dest) != kind:
        raise ConfigError(f"cannot move {source} to {dest}: not the same kind of address")
    if kind == "program":
        return [("programs", source, dest)] if source in data.get("programs", {}) else []
    if kind == "job":
        return [("jobs", source, dest)] if source in data.get("jobs", {}) else []
    old = "job." + source[len("batch.") :] + "/"
    new = "job." + dest[len("batch.") :] + "/"
    return [
        ("jobs", a, new + a[len(old) :]) for a in sorted(data.get("jobs", {})) if a.startswith(old)
    ]


def rename_steps(data: Mapping[str, Any], renames: Iterable[Rename]) -> list[Step]:
    """The lockfile steps carrying out ``renames``: each entry written at its new address (a job
    with its new ``batch``), then removed from its old one; jobs that ran a renamed program name
    the new one."""
    renames = list(renames)
    programs = {old: new for section, old, new in renames if section == "programs"}
    moved = {old for _, old, _ in renames}
    steps: list[Step] = []
    for section, old, new in renames:
        record = dict(data[section][old])
        if section == "jobs":
            record["batch"] = new[len("job.") :].split("/", 1)[0]
            if record.get("program") in programs:
                record["program"] = programs[record["program"]]
        steps.append((section, new, record))
    for address, record in sorted(data.get("jobs", {}).items()):
        if address not in moved and record.get("program") in programs:
            steps.append(("jobs", address, {**record, "program": programs[record["program"]]}))
    targets = {(section, new) for section, new, _ in steps}
    steps += [(section, old, None) for section, old, _ in renames if (section, old) not in targets]
    return steps


def apply_steps(data: Mapping[str, Any], steps: Sequence[Step]) -> dict[str, Any]:
    """``data`` with ``steps`` carried out (a new mapping; ``data`` is left as it was)."""
    result = dict(data)
    for section in {section for section, _, _ in steps}:
        result[section] = dict(data.get(section, {}))
    for section, address, record in steps:
        if record is None:
            result[section].pop(address, None)
        else:
            result[section][address] = record
    return result


def move_steps(data: Mapping[str, Any], source: str, dest: str) -> tuple[list[Rename], list[Step]]:
    """``qrt mv``: every entry at ``source`` moves under ``dest``, where nothing may be yet."""
    if source == dest:
        raise ConfigError(f"{source} is already where it is")
    renames = _renames(data, source, dest)
    if not renames:
        raise ConfigError(f"nothing at {source} in the lockfile (see `qrt show`)")
    taken = [new for section, _, new in renames if new in data.get(section, {})]
    if address_kind(dest) == "batch":
        prefix = "job." + dest[len("batch.") :] + "/"
        taken = [a for a in data.get("jobs", {}) if a.startswith(prefix)]
    if taken:
        raise ConfigError(
            f"cannot move {source} to {dest}: the lockfile already has {taken[0]}"
            + (f" and {len(taken) - 1} more" if len(taken) > 1 else "")
            + "; `qrt forget` it first if it is stale"
        )
    return renames, rename_steps(data, renames)


def planned_renames(data: Mapping[str, Any], moves: Sequence[MoveSpec]) -> list[Rename]:
    """The renames ``Moved`` manifests ask of this lockfile: entries still at their old address.
    One already moved (nothing left at ``from``) asks nothing. An entry at both addresses is left
    by an apply interrupted mid-move when both are the same record, and is moved again; two
    different records are a conflict only the user can settle."""
    renames: list[Rename] = []
    for move in moves:
        for section, old, new in _renames(data, move.source, move.dest):
            there = data[section].get(new)
            if there is not None and _differ(data[section][old], there):
                raise PlanError(
                    f"{move.manifest}:{move.line}: both {old} and {new} are in the lockfile, as "
                    f"different records; `qrt forget {old}` (or {new}) to keep the other"
                )
            renames.append((section, old, new))
    return renames


def _differ(record: Mapping[str, Any], there: Mapping[str, Any]) -> bool:
    """Whether two entries are other runs, not one entry a move wrote and had yet to remove."""
    own = ("batch", "program")  # the fields a move rewrites
    return {k: v for k, v in record.items() if k not in own} != {
        k: v for k, v in there.items() if k not in own
    }


def forget_steps(data: Mapping[str, Any], address: str) -> list[Step]:
    """``qrt forget``: remove the entries at ``address`` (``batch.NAME``: all its jobs)."""
    kind = address_kind(address)
    if kind == "batch":
        prefix = "job." + address[len("batch.") :] + "/"
        found = [("jobs", a) for a in sorted(data.get("jobs", {})) if a.startswith(prefix)]
    else:
        section = "programs" if kind == "program" else "jobs"
        found = [(section, address)] if address in data.get(section, {}) else []
    if not found:
        raise ConfigError(f"nothing at {address} in the lockfile (see `qrt show`)")
    return [(section, a, None) for section, a in found]
