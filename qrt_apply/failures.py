"""The text of a failed job: what the runtime stores, what qrt.lock records, and its one-line reason.

A failed job's error names the **user program's own** traceback frames (shown as ``program.py``),
never qrt's (the worker, the sandbox launcher, the server) nor a library's, and no absolute path of
the machine that ran it. It is made so at the source (:func:`format_failure`, in the worker and in
the sandbox), and scrubbed again where the client records it (:func:`scrub_error`), since another
runtime, or an older ``qrt serve``, may have stored something else.

An error qrt itself raises about the job's inputs (a ``QrtError``) is its message alone; any other
exception is ``Type: message`` under the program's frames, with the type's short name
(``QiskitError``, not ``qiskit.exceptions.QiskitError``).

Standard library only: the sandbox imports this before a job's program runs.
"""

from __future__ import annotations

import re
import traceback
from pathlib import PurePosixPath

__all__ = ["PROGRAM_FILE", "failure_reason", "format_failure", "scrub_error", "scrub_paths"]

PROGRAM_FILE = "program.py"  # how the user program's frames are shown
_REASON_LIMIT = 300

# An absolute POSIX path of two or more components, not part of a URL or a relative path.
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+@%-]+/)+[\w.+@%-]*")
_PACKAGES = re.compile(r"/(?:site|dist)-packages/")
_FRAME = re.compile(r'^  File "(?P<file>[^"]*)", line \d+')
_HEADER = "Traceback (most recent call last):"
_INTERNAL = re.compile(r"(?:^|/)qrt_apply/")


def _short_path(match: re.Match[str]) -> str:
    path = match.group(0)
    packages = _PACKAGES.search(path)
    if packages is not None:
        return path[packages.end() :]  # qiskit/circuit/quantumcircuit.py
    name = PurePosixPath(path).name
    return f".../{name}" if name else "..."


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path shortened: a library file to its path inside the
    packages directory, anything else to ``.../NAME``."""
    return _ABS_PATH.sub(_short_path, text)


def _type_name(exc: BaseException) -> str:
    return type(exc).__qualname__


def _exception_lines(exc: BaseException, program_file: str | None, seen: set[int]) -> list[str]:
    from qrt_apply.errors import QrtError

    seen.add(id(exc))
    lines: list[str] = []
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        lines += _exception_lines(cause, program_file, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        lines += _exception_lines(context, program_file, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if program_file is not None and frame.filename == program_file
    ]
    if frames:
        for frame in frames:
            frame.filename = PROGRAM_FILE
        lines.append(_HEADER + "\n")
        lines += traceback.StackSummary.from_list(frames).format()
    message = str(exc)
    if isinstance(exc, QrtError):
        lines.append(f"{message}\n")
    else:
        lines.append(f"{_type_name(exc)}: {message}\n" if message else f"{_type_name(exc)}\n")
    return lines


def format_failure(exc: BaseException, *, program_file: str | None = None) -> str:
    """The stored error of a job that raised ``exc``: the frames of ``program_file`` (the user
    program's path as it ran; None for a built-in program, which shows none), the exception and
    its causes, with absolute paths shortened."""
    return scrub_paths("".join(_exception_lines(exc, program_file, set())))


def scrub_error(text: str) -> str:
    """A recorded error as :func:`format_failure` would make it, from text another runtime
    stored: the frames of qrt's own modules dropped (and a traceback header left with no frame),
    absolute paths shortened."""
    out: list[str] = []
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip("\r\n") != _HEADER:
            out.append(line)
            index += 1
            continue
        kept: list[str] = []
        index += 1
        while index < len(lines) and lines[index].startswith("  "):
            frame = _FRAME.match(lines[index])
            block = [lines[index]]
            index += 1
            while index < len(lines) and lines[index].startswith("    "):
                block.append(lines[index])
                index += 1
            if frame is None or not _INTERNAL.search(frame.group("file")):
                kept += block
        if kept:
            out += [line, *kept]
    return scrub_paths("".join(out))


def failure_reason(text: str | None) -> str:
    """One line that says why a job failed: the exception line after the last traceback frame,
    else the last line of the text."""
    lines = [line.rstrip() for line in (text or "").splitlines()]
    last_frame = max((i for i, line in enumerate(lines) if _FRAME.match(line)), default=None)
    if last_frame is not None:
        after = [
            line for line in lines[last_frame + 1 :] if line.strip() and not line.startswith("    ")
        ]
        reason = after[0] if after else ""
    else:
        reason = next((line for line in reversed(lines) if line.strip()), "")
    reason = reason.strip()
    return reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 3] + "..."
