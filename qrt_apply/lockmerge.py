"""Three-way merge of ``qrt.lock`` by address: git's merge driver for lockfiles.

Git merges text line by line, so two branches that each add an entry where the sorted addresses
meet (``job.bell-a/…`` and ``job.bell-b/…``) conflict although they touch different objects. This
merge works on the data instead: every top-level mapping (``programs``, ``jobs``) is merged entry by
entry, every other top-level value (``target``) as a whole, each three-way against the common
ancestor:

* both sides agree (also both removed it) → that;
* one side left it as the ancestor had it → the other side's version;
* both changed it, differently (or one changed it and the other removed it) → a **conflict**.

A clean merge is written in the lockfile's own deterministic layout. With conflicts every
conflicting entry is written between git's ``<<<<<<<``/``=======``/``>>>>>>>`` markers (ours, then
theirs; a removed entry is an empty side), everything else merged; the merge then fails so git
stops and lists the file, and ``qrt`` refuses to read it until the markers are gone.

Configured as a git merge driver (see README)::

    .gitattributes:  qrt.lock merge=qrt
    git config merge.qrt.driver "qrt merge-lockfile %O %A %B"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrt_apply.errors import LockfileError
from qrt_apply.fileio import atomic_write
from qrt_apply.lockfile import Lockfile, read_lock
from qrt_apply.locktext import EntryTexts

__all__ = ["Conflict", "MergeResult", "merge_lock_data", "merge_lockfiles", "render_merge"]

_ABSENT: Any = object()  # an entry one version does not have
_MARKER = "\x00qrt-conflict-"  # never in a lockfile: JSON text of a record escapes NUL


@dataclass(frozen=True)
class Conflict:
    """One entry both sides changed differently; ``None`` stands for removed."""

    key: tuple[str, ...]  # ("jobs", "job.b/j"), ("target",)
    ours: Any
    theirs: Any

    @property
    def address(self) -> str:
        return self.key[-1]

    def describe(self) -> str:
        if self.ours is None or self.theirs is None:
            side = "ours" if self.ours is None else "theirs"
            return f"{self.address} (removed in {side}, changed in the other)"
        return f"{self.address} (changed differently on both sides)"


@dataclass
class MergeResult:
    data: dict[str, Any]
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def _pick(base: Any, ours: Any, theirs: Any) -> tuple[Any, bool]:
    """The three-way choice for one value, and whether it conflicts."""
    if ours == theirs:
        return ours, False
    if ours == base:
        return theirs, False
    if theirs == base:
        return ours, False
    return ours, True


def merge_lock_data(
    base: Mapping[str, Any] | None, ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> MergeResult:
    """Merge two lockfiles' data against their common ancestor (None: both added the file)."""
    base = base or {}
    versions = {d.get("version") for d in (ours, theirs)} | (
        {base["version"]} if "version" in base else set()
    )
    if len(versions) != 1:
        raise LockfileError(
            f"cannot merge lockfiles of different versions ({', '.join(map(str, versions))})"
        )
    result = MergeResult(data={})
    for key in sorted({*base, *ours, *theirs}):
        b, o, t = (d.get(key, _ABSENT) for d in (base, ours, theirs))
        if all(isinstance(v, Mapping) or v is _ABSENT for v in (b, o, t)) and key != "target":
            section: dict[str, Any] = {}
            b_map, o_map, t_map = ({} if v is _ABSENT else v for v in (b, o, t))
            for address in sorted({*b_map, *o_map, *t_map}):
                value, conflict = _pick(
                    b_map.get(address, _ABSENT),
                    o_map.get(address, _ABSENT),
                    t_map.get(address, _ABSENT),
                )
                if conflict:
                    result.conflicts.append(
                        Conflict(
                            (key, address),
                            _none(o_map.get(address, _ABSENT)),
                            _none(t_map.get(address, _ABSENT)),
                        )
                    )
                if value is not _ABSENT:
                    section[address] = value
            result.data[key] = section
            continue
        value, conflict = _pick(b, o, t)
        if conflict:
            result.conflicts.append(Conflict((key,), _none(o), _none(t)))
        if value is not _ABSENT:
            result.data[key] = value
    return result


def _none(value: Any) -> Any:
    return None if value is _ABSENT else value


def render_merge(result: MergeResult, path: Path, texts: EntryTexts | None = None) -> str:
    """The merged lockfile's text: the lockfile layout, conflicts between git's markers.
    ``texts``: the entry texts of the side most records came from (not rendered again)."""
    data = dict(result.data)  # the markers go into copies of the mappings, not into the records
    for number, conflict in enumerate(result.conflicts):
        if len(conflict.key) == 1:
            data[conflict.key[0]] = f"{_MARKER}{number}"
        else:
            section = data[conflict.key[0]] = dict(data.get(conflict.key[0]) or {})
            section[conflict.key[1]] = f"{_MARKER}{number}"
    text = Lockfile(path, data, texts=texts).render()
    if not result.conflicts:
        return text
    lines = []
    for line in text.split("\n"):
        start = line.find(f'"{_json_escape(_MARKER)}')
        if start < 0:
            lines.append(line)
            continue
        number = int(line[start:].split("-")[-1].rstrip('",'))
        conflict = result.conflicts[number]
        indent = line[: len(line) - len(line.lstrip())]
        comma = "," if line.endswith(",") else ""
        lines.append("<<<<<<< ours")
        lines.extend(_entry_lines(conflict.address, conflict.ours, indent, comma))
        lines.append("=======")
        lines.extend(_entry_lines(conflict.address, conflict.theirs, indent, comma))
        lines.append(">>>>>>> theirs")
    return "\n".join(lines)


def _json_escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _entry_lines(key: str, value: Any, indent: str, comma: str) -> list[str]:
    if value is None:
        return []
    body = json.dumps({key: value}, sort_keys=True, indent=2, ensure_ascii=False).split("\n")[1:-1]
    lines = [indent + line[2:] for line in body]
    lines[-1] += comma
    return lines


def _load(path: Path, *, may_be_empty: bool) -> tuple[dict[str, Any] | None, EntryTexts]:
    if may_be_empty and (not path.exists() or path.stat().st_size == 0):
        return None, EntryTexts()
    data, texts = read_lock(path)
    if data is None:
        raise LockfileError(f"{path.name} does not exist")
    return data, texts


def merge_lockfiles(base: Path, ours: Path, theirs: Path) -> MergeResult:
    """git's ``%O %A %B``: merge into ``ours`` (written even with conflicts, then with markers)."""
    ours_data, ours_texts = _load(ours, may_be_empty=False)
    result = merge_lock_data(
        _load(base, may_be_empty=True)[0],
        ours_data or {},
        _load(theirs, may_be_empty=False)[0] or {},
    )
    # Entries both sides agree on are ours' very objects, so their text as read is kept.
    text = render_merge(result, ours, ours_texts)
    if ours.read_text("utf-8") != text:
        atomic_write(ours, text)
    return result
