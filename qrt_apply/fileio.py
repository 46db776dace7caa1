"""Writing files so that a crash at any moment leaves either the old or the new content: the one
atomic-write helper of the package (write a temporary file, fsync, rename, fsync the directory),
with the mode the umask gives unless the caller asks for a private one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir"]


def _read_umask() -> int | None:
    # /proc reads the umask without changing it: os.umask(set) then os.umask(restore) is
    # process-global and would leave a window in which another thread creates files 0o000-masked.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(x.split()[1], 8) for x in status if x.startswith("Umask:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _umask_at_import() -> int:
    mask = _read_umask()
    if mask is None:  # no /proc: set and restore once, at import, before any thread of qrt's runs
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_at_import()


def fsync_dir(directory: Path) -> None:
    """Make a rename, creation or removal in ``directory`` survive a machine crash."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str | bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` (write, fsync, rename, fsync the directory): readers see the
    old or the new file, never a part. ``text`` as bytes is written as it is (a picture).
    ``mode`` defaults to what the umask gives a new file (mkstemp alone would leave every file
    0600)."""
    if mode is None:
        umask = _read_umask()
        mode = 0o666 & ~(_UMASK_AT_IMPORT if umask is None else umask)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # before the content: a 0600 file never holds its text world-readable
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as raw:
                raw.write(text)
                raw.flush()
                os.fsync(raw.fileno())
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
