"""The Console: the only way the core reports progress. The CLI picks an implementation."""

from __future__ import annotations

import logging
from typing import Protocol

import click

__all__ = ["Console", "LogConsole", "NullConsole", "TerminalConsole"]


class Console(Protocol):
    def step(self, address: str, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


class NullConsole:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, address: str, message: str) -> None:
        self.lines.append(f"{address}: {message}")

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")


class LogConsole:
    """Steps as INFO and warnings as WARNING records of a logger (``qrt_apply`` by default): what
    the Python API reports when the caller passes no console."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("qrt_apply")

    def step(self, address: str, message: str) -> None:
        self.logger.info("%s: %s", address, message)

    def warn(self, message: str) -> None:
        self.logger.warning("%s", message)


class TerminalConsole:
    """Steps on stdout (stderr with ``err``, as under ``--json``), warnings on stderr. ``color``:
    False never styles; None styles on a terminal. It is passed on every write, as steps come from
    worker threads, which have no click context to ask."""

    def __init__(self, *, color: bool | None = None, err: bool = False) -> None:
        self.color = color
        self.err = err

    def step(self, address: str, message: str) -> None:
        click.echo(f"{click.style(address, bold=True)}: {message}", err=self.err, color=self.color)

    def warn(self, message: str) -> None:
        click.echo(click.style(f"warning: {message}", fg="yellow"), err=True, color=self.color)
