"""Control groups for sandboxes: one memory and process limit for a sandbox as a whole.

rlimits count per process: a program of 64 processes could hold 64 times its address space, and
the pages of an in-memory file system are counted by no rlimit at all. A memory cgroup counts
every page of the sandbox (tmpfs included) and OOM-kills it at the limit; a pids cgroup caps its
processes and threads together.

``CgroupMaker.find()`` looks for controllers this process may create child groups in: cgroup v1
``memory`` and ``pids`` hierarchies (below this process's own group), or a cgroup v2 group whose
children get the ``memory`` and ``pids`` files. Where there are none (an unprivileged server, a
container without delegation), sandboxes keep their rlimits only, and the executor says so once.
A process joins its group before it starts the sandbox (``wrap``), so nothing escapes it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cgroup", "CgroupMaker"]

_ROOT = Path("/sys/fs/cgroup")
# sh joins the groups named after the count, then becomes the sandbox: no race with its children
_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'


def _own_groups() -> dict[str, str]:
    """controller (or "" for cgroup v2) -> this process's group path, from /proc/self/cgroup."""
    groups = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


@dataclass
class Cgroup:
    """The groups of one sandbox (one directory per hierarchy)."""

    dirs: list[Path]

    def wrap(self, command: list[str]) -> list[str]:
        """``command``, run after its process has joined every group."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", _JOIN, "qrt-sandbox", str(len(procs)), *procs, *command]

    def ran_out_of_memory(self) -> bool:
        for directory in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                if (directory / "memory.failcnt").exists():  # v1
                    return int((directory / "memory.failcnt").read_text()) > 0
                events = (directory / "memory.events").read_text()  # v2
                counts = dict(line.split() for line in events.splitlines())
                return int(counts.get("oom_kill", 0)) > 0 or int(counts.get("oom", 0)) > 0
        return False

    def remove(self) -> None:
        """Remove the groups once their processes are gone (they may take a moment to exit)."""
        for directory in self.dirs:
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


class CgroupMaker:
    """Creates a ``Cgroup`` per sandbox under the parents found by ``find``."""

    def __init__(self, memory_parent: Path, pids_parent: Path | None, v2: bool) -> None:
        self.memory_parent = memory_parent
        self.pids_parent = pids_parent
        self.v2 = v2
        self._prefix = f"qrt-sandbox-{os.getpid()}-"

    @classmethod
    def find(cls) -> CgroupMaker | None:
        groups = _own_groups()
        memory = groups.get("memory")
        if memory is not None and (_ROOT / "memory").is_dir():  # cgroup v1
            parent = _ROOT / "memory" / memory.lstrip("/")
            pids = groups.get("pids")
            pids_parent = _ROOT / "pids" / pids.lstrip("/") if pids is not None else None
            maker = cls(
                parent, pids_parent if pids_parent and pids_parent.is_dir() else None, False
            )
        elif "" in groups and (_ROOT / "cgroup.controllers").exists():  # cgroup v2
            maker = cls(_ROOT / groups[""].lstrip("/"), None, True)
        else:
            return None
        try:  # only a group that really limits counts
            probe = maker.make(64, 8)
        except OSError:
            return None
        probe.remove()
        return maker

    def make(self, memory_mb: int, processes: int) -> Cgroup:
        name = self._prefix + secrets.token_hex(4)
        memory_dir = self.memory_parent / name
        memory_dir.mkdir()
        made = Cgroup([memory_dir])
        try:
            if self.v2:
                (memory_dir / "memory.max").write_text(str(memory_mb << 20))
                with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                    (memory_dir / "memory.swap.max").write_text("0")
                (memory_dir / "pids.max").write_text(str(processes))
                return made
            (memory_dir / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
            with contextlib.suppress(OSError):  # memory + swap, where swap is accounted
                (memory_dir / "memory.memsw.limit_in_bytes").write_text(str(memory_mb << 20))
            if self.pids_parent is not None:
                pids_dir = self.pids_parent / name
                pids_dir.mkdir()
                made.dirs.append(pids_dir)
                (pids_dir / "pids.max").write_text(str(processes))
            return made
        except OSError:
            made.remove()
            raise
