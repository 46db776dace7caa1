"""What crosses between the engine and a job's process: length-prefixed JSON frames, and the log.

A frame is a 4-byte big-endian length and that many bytes of JSON (an object). The warm built-in
workers speak frames on their stdin/stdout (``write_frame``/``read_frame``, blocking: both ends are
qrt's own code). A sandbox sends frames on a pipe (``FrameReader``), and there the writer is the
user's program, so the reader never blocks, accepts at most ``limit`` bytes in all, and skips what
is not a JSON object; the job's output log is a file of the executor's own (``read_log``).
"""

from __future__ import annotations

import json
import os
import struct
from typing import IO, Any

__all__ = ["FrameReader", "JobFrames", "encode_frame", "read_frame", "read_log", "write_frame"]

_HEADER = struct.Struct(">I")
_LOG_HEAD = 64 << 10  # at most this much of the head is kept when the log is cut


def encode_frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return _HEADER.pack(len(data)) + data


def write_frame(stream: IO[bytes], message: dict[str, Any]) -> None:
    stream.write(encode_frame(message))
    stream.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next frame of a trusted peer, blocking; None at the end of the stream."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    if data is None:
        return None
    message: dict[str, Any] = json.loads(data)
    return message


class FrameReader:
    """Frames from an untrusted writer on the non-blocking descriptor ``fd``.

    ``read()`` returns the complete frames available now; ``ValueError`` once more than ``limit``
    bytes have arrived in all. ``closed`` turns true at the end of the stream."""

    def __init__(self, fd: int, limit: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.limit = limit
        self.closed = False
        self._buffer = bytearray()
        self._total = 0

    def read(self) -> list[dict[str, Any]]:
        while not self.closed:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
                break
            self._total += len(chunk)
            if self._total > self.limit:
                raise ValueError(f"the job sent more than {self.limit} bytes of results")
            self._buffer += chunk
        frames = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break  # the rest of this frame has not arrived yet
            data = bytes(self._buffer[_HEADER.size : _HEADER.size + size])
            del self._buffer[: _HEADER.size + size]
            try:
                frame = json.loads(data)
            except ValueError:
                continue  # the program wrote to the pipe itself; junk is skipped
            if isinstance(frame, dict):
                frames.append(frame)
        return frames


class JobFrames:
    """What a sandbox sent on its pipe: whether the program started, its interim results (taken as
    they come), and its last result."""

    def __init__(self, fd: int, limit: int) -> None:
        self._reader = FrameReader(fd, limit)
        self.started = False
        self._interim: list[str] = []
        self._result: object = None

    def read(self) -> None:
        """Take what has arrived (``ValueError`` past the limit)."""
        for frame in self._reader.read():
            if frame.get("started") is True:
                self.started = True
            elif isinstance(frame.get("interim"), str):
                self._interim.append(frame["interim"])
            elif "result" in frame:
                self._result = frame["result"]

    def take_interim(self) -> list[str]:
        taken, self._interim = self._interim, []
        return taken

    def result(self) -> dict[str, Any] | None:
        """The result as ``{"status", "result", "metrics"}``, or None if none valid came."""
        result = self._result
        if (
            not isinstance(result, dict)
            or result.get("status") not in ("COMPLETED", "FAILED")
            or not isinstance(result.get("result"), str)
        ):
            return None
        metrics = result.get("metrics")
        return {
            "status": result["status"],
            "result": result["result"],
            "metrics": metrics if isinstance(metrics, dict) else {},
        }


def read_log(path: os.PathLike[str] | str, limit: int) -> str:
    """The output log, keeping its head and tail when it is larger than ``limit`` bytes.

    ``path`` is the executor's own file (the job only holds a descriptor to it)."""
    try:
        with open(path, "rb") as stream:
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
