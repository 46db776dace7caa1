"""qrt import: a thin shell over ``Project.import_`` (the rules are in ``qrt_apply/adopt.py``)."""

from __future__ import annotations

from typing import Any

import click

from qrt_apply.render.console import TerminalConsole

__all__ = ["COMMANDS"]


@click.command(name="import")
@click.argument("address")
@click.argument("object_id")
@click.pass_obj
def import_(app: Any, address: str, object_id: str) -> int:
    """Adopt runtime object OBJECT_ID as ADDRESS (program.NAME or job.BATCH/JOB)."""
    app.api().import_(address, object_id, console=TerminalConsole(color=app.color))
    click.echo(f"Imported {object_id} as {address}. Run `qrt plan` to see what differs.")
    return 0


COMMANDS = (import_,)
