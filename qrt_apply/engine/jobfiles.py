"""Reading what a sandboxed job wrote, without trusting it.

The job directory belongs to the program: any name in it may be a symlink to a host file, a FIFO
that would block the reader, or a file of any size. Every read here opens with ``O_NOFOLLOW`` and
``O_NONBLOCK``, accepts regular files only and reads at most a stated number of bytes.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

__all__ = ["InterimReader", "read_job_file", "read_log"]

_LOG_HEAD = 64 << 10  # at most this much of the head is kept when the log is cut


def read_job_file(path: Path, limit: int, offset: int = 0) -> bytes | None:
    """Up to ``limit`` bytes of the regular file ``path`` from ``offset``; None when it is missing,
    not a regular file, or a symlink. Raises ``ValueError`` when more than ``limit`` bytes remain."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size - offset > limit:
            raise ValueError(f"{path.name} holds more than {limit} bytes")
        os.lseek(fd, offset, os.SEEK_SET)
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise ValueError(f"{path.name} holds more than {limit} bytes")
        return data
    finally:
        os.close(fd)


def read_log(path: Path, limit: int) -> str:
    """The output log, keeping its head and tail when it is larger than ``limit`` bytes.

    ``path`` is the executor's own file (the job only holds a descriptor to it)."""
    try:
        with path.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(0)
            if size <= limit:
                data = stream.read()
            else:
                head = stream.read(min(_LOG_HEAD, limit // 4))
                stream.seek(size - (limit - len(head)))
                skipped = size - limit
                data = head + f"\n[... {skipped} bytes of output skipped ...]\n".encode()
                data += stream.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


class InterimReader:
    """Incremental reader of a job's interim.jsonl (one JSON string per complete line).

    At most ``limit`` bytes in all are taken; a job that publishes more fails (``ValueError``)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.offset = 0
        self.limit = limit

    def read(self) -> list[str]:
        data = read_job_file(self.path, self.limit - self.offset, self.offset)
        if not data:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        messages = []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue  # the program wrote the file itself; a broken line is skipped
            if isinstance(message, str):
                messages.append(message)
        return messages
