"""Progress of an apply or refresh while it runs.

On a terminal one status line is redrawn in place (``\\r``, padded with spaces: no escape sequence,
so it holds under ``NO_COLOR`` too) and cleared around each step line; elsewhere (CI logs) a plain
line is written every ``every`` seconds::

    apply: 120/500 done, 2 failed, 1m20s elapsed, waiting on 30 jobs

The counts are read from the applier's report (:class:`~qrt_apply.apply.ApplyReport`), which the
apply updates as it goes; the clock is injected, so when a line is due is tested without waiting.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from qrt_apply.plan.model import Plan
from qrt_apply.render.console import Console

__all__ = [
    "Counts",
    "Progress",
    "ProgressConsole",
    "count_progress",
    "format_elapsed",
]

_SUBMITS = ("run", "rerun")


class _Report(Protocol):
    done: dict[str, int]
    finished: dict[str, str]


def format_elapsed(seconds: float) -> str:
    """``4.2s`` under a minute, then ``1m20s``, ``2h03m07s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@dataclass(frozen=True)
class Counts:
    """Where an apply or refresh stands: ``done`` of ``total`` actions, ``failed`` jobs, and the
    jobs submitted and not yet final (``waiting``)."""

    verb: str
    done: int
    total: int
    failed: int
    waiting: int
    elapsed: float

    def line(self) -> str:
        text = (
            f"{self.verb}: {self.done}/{self.total} done, {self.failed} failed, "
            f"{format_elapsed(self.elapsed)} elapsed"
        )
        if self.waiting:
            text += f", waiting on {self.waiting} job{'s' if self.waiting != 1 else ''}"
        return text


def _copy(mapping: Mapping[str, Any]) -> dict[str, Any]:
    # Worker threads add keys while this reads: retry the (rare) copy that meets a resize.
    while True:
        try:
            return dict(mapping)
        except RuntimeError:
            continue


def count_progress(
    verb: str, plan: Plan, report: _Report, *, collect: bool, elapsed: float
) -> Counts:
    """The counts of ``plan`` carried out as far as ``report`` says. ``collect``: jobs count as
    done once final (waiting for them); otherwise once submitted."""
    done = _copy(report.done)
    finished = _copy(report.finished)
    waits = sum(1 for a in plan.actions if a.kind == "wait")
    submitted = sum(done.get(kind, 0) for kind in _SUBMITS) + waits
    others = sum(n for kind, n in done.items() if kind not in _SUBMITS)
    failed = sum(1 for status in finished.values() if status != "COMPLETED")
    if collect:
        jobs_done, waiting = len(finished), max(0, submitted - len(finished))
    else:
        jobs_done, waiting = submitted, 0
    total = len(plan.actions)
    return Counts(verb, min(total, others + jobs_done), total, failed, waiting, elapsed)


class Progress:
    """Writes the status line to ``stream``: redrawn at most every ``redraw`` seconds when ``live``
    (a terminal), else a plain line each ``every`` seconds. ``tick()`` writes what is due."""

    def __init__(
        self,
        stream: TextIO,
        counts: Callable[[float], Counts],
        *,
        live: bool,
        every: float = 10.0,
        redraw: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        width: int = 0,
    ) -> None:
        self.stream = stream
        self.counts = counts
        self.width = width  # live: the line is cut to this many characters (0: not cut)
        self.live = live
        self.every = every
        self.redraw = redraw
        self.clock = clock
        self.started = clock()
        self._last: float | None = None
        self._shown = 0  # characters of the status line on screen (live only)
        self._lock = threading.RLock()

    def tick(self, *, force: bool = False) -> None:
        with self._lock:
            now = self.clock()
            interval = self.redraw if self.live else self.every
            since = now - (self._last if self._last is not None else self.started)
            if not force and since < interval:
                return
            self._last = now
            line = self.counts(now - self.started).line()
            if self.live:
                if self.width and len(line) > self.width:
                    line = line[: self.width - 1] + "…"
                pad = max(0, self._shown - len(line))
                self.stream.write("\r" + line + " " * pad)
                self._shown = len(line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    @contextmanager
    def above(self) -> Iterator[None]:
        """Around writing a line of its own to the terminal: the status line is cleared first and
        drawn again after."""
        with self._lock:
            if self.live and self._shown:
                self.stream.write("\r" + " " * self._shown + "\r")
                self.stream.flush()
                self._shown = 0
                try:
                    yield
                finally:
                    self.tick(force=True)
            else:
                yield

    def close(self) -> None:
        """Leave the terminal clean: the status line is erased."""
        with self._lock:
            if self.live and self._shown:
                self.stream.write("\r" + " " * self._shown + "\r")
                self.stream.flush()
                self._shown = 0


class ProgressConsole:
    """A Console that shows progress while the API runs an apply or refresh (``watch``), passing
    steps and warnings on to ``inner`` with the status line out of their way."""

    def __init__(
        self,
        inner: Console,
        stream: TextIO,
        *,
        live: bool | None = None,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.every = every
        self.clock = clock
        self.progress: Progress | None = None

    def step(self, address: str, message: str) -> None:
        self._around(lambda: self.inner.step(address, message))

    def warn(self, message: str) -> None:
        self._around(lambda: self.inner.warn(message))

    def _around(self, write: Callable[[], None]) -> None:
        progress = self.progress
        if progress is None:
            write()
            return
        with progress.above():
            write()
        progress.tick()

    @contextmanager
    def watch(self, verb: str, plan: Plan, report: _Report, *, collect: bool) -> Iterator[None]:
        """Show progress while the block runs: a thread ticks the status line; it is erased after."""

        def counts(elapsed: float) -> Counts:
            return count_progress(verb, plan, report, collect=collect, elapsed=elapsed)

        # One column short of the terminal's width, so a full line never wraps onto the next.
        width = shutil.get_terminal_size().columns - 1 if self.live else 0
        progress = Progress(
            self.stream, counts, live=self.live, every=self.every, clock=self.clock, width=width
        )
        stop = threading.Event()

        def ticker() -> None:
            while not stop.wait(progress.redraw if progress.live else 1.0):
                progress.tick()

        thread = threading.Thread(target=ticker, name="qrt-progress", daemon=True)
        self.progress = progress
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.progress = None
            progress.close()
