"""What passed the deep input checks (``pubs.py``) before: ``.qrt/checked.json``.

The file holds the digest of each built-in job's checked inputs and the width of each of their
circuits, under the versions of qrt and qiskit that checked them; a change of either makes every
check run again. It is local state (git-ignored ``.qrt/``), never written by a load that failed
nor where no ``.qrt/`` exists yet, and ignored when unreadable.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qrt_apply.model import canonical_json, sha256_hex

__all__ = ["WIDTHS", "CheckCache", "circuit_digest"]

# circuit digest -> width: of every circuit parsed in this process or read from a CheckCache
WIDTHS: dict[str, int] = {}


def circuit_digest(value: Any) -> str:
    """The digest a circuit (OpenQASM text or a library mapping) is remembered by."""
    return sha256_hex(value if isinstance(value, str) else canonical_json(value))


def _checker_version() -> str:
    """qrt's and qiskit's versions: a check made under others is made again. qiskit's is read
    from its VERSION.txt (importing qiskit, or importlib.metadata, would cost what the cache
    saves)."""
    from qrt_apply import __version__

    spec = importlib.util.find_spec("qiskit")
    qiskit = "none"
    if spec is not None and spec.origin is not None:
        try:
            qiskit = (Path(spec.origin).parent / "VERSION.txt").read_text("utf-8").strip()
        except OSError:
            qiskit = str(Path(spec.origin).stat().st_mtime_ns)
    return f"{__version__}/{qiskit}/2"  # the last part: what the checks cover (2: V1 lists)


class CheckCache:
    """What passed the checks before, in ``path`` (``.qrt/checked.json``); None: remember nothing.

    Read on first use, written by :meth:`save` when something was added: a failed load writes
    nothing, and neither does a project without ``.qrt/`` (validate and ``plan --lock-only``
    create no local state). A file that cannot be read or written is ignored."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._loaded = False
        self._changed = False
        self._version = ""
        self._jobs: set[str] = set()
        self._used: set[str] = set()  # what this load asked about: all that is kept
        self._circuits: set[str] = set()  # digests of the circuits of those jobs

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._version = _checker_version()
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != self._version:
            return
        jobs, widths = data.get("jobs"), data.get("widths")
        if isinstance(jobs, list) and isinstance(widths, dict):
            self._jobs = {j for j in jobs if isinstance(j, str)}
            WIDTHS.update({k: v for k, v in widths.items() if isinstance(v, int)})

    def checked(self, key: str, circuits: Sequence[str]) -> bool:
        """Whether the inputs of digest ``key``, with these circuits, passed before."""
        self._load()
        self._used.add(key)
        self._circuits.update(circuits)
        return key in self._jobs

    def add(self, key: str) -> None:
        self._load()
        self._used.add(key)
        if key not in self._jobs:
            self._jobs.add(key)
            self._changed = True

    def save(self) -> None:
        """Write what this load checked (entries of jobs no longer there are dropped)."""
        if self.path is None or not (self._changed or self._jobs - self._used):
            return
        if not self.path.parent.is_dir():
            return
        from qrt_apply.fileio import atomic_write

        self._jobs &= self._used
        widths = {d: WIDTHS[d] for d in sorted(self._circuits) if d in WIDTHS}
        data = {"version": self._version, "jobs": sorted(self._jobs), "widths": widths}
        try:
            atomic_write(self.path, json.dumps(data, sort_keys=True) + "\n")
        except OSError:
            return
        self._changed = False
