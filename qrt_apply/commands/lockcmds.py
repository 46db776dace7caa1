"""merge-lockfile, mv, forget: commands that edit qrt.lock itself and never call the runtime."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import LockfileError, QrtError

__all__ = ["COMMANDS"]


@click.command(name="merge-lockfile")
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ours", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("theirs", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("pathname", required=False)
def merge_lockfile(base: Path, ours: Path, theirs: Path, pathname: str | None) -> int:
    """git merge driver for qrt.lock: merge OURS and THEIRS by address into OURS.

    Configure it once per clone with
    `git config merge.qrt.driver "qrt merge-lockfile %O %A %B %P"` and the line
    `qrt.lock merge=qrt` in .gitattributes. Exit 0 when clean; 1 with the conflicting
    addresses listed and marked in the file.
    """
    from qrt_apply.lockmerge import merge_lockfiles

    name = pathname or "qrt.lock"
    try:
        result = merge_lockfiles(base, ours, theirs)
    except LockfileError as exc:
        # Not three lockfiles qrt can read (one holds conflict markers already, say): git's own
        # text merge is still better than refusing outright.
        click.echo(f"qrt merge-lockfile: {name}: {exc}; merging it as text", err=True)
        text = subprocess.run(
            ["git", "merge-file", "-L", "ours", "-L", "base", "-L", "theirs", ours, base, theirs],
            check=False,
        )
        return 0 if text.returncode == 0 else 1
    if result.clean:
        return 0
    click.echo(
        f"qrt merge-lockfile: {name}: {len(result.conflicts)} entr"
        f"{'y' if len(result.conflicts) == 1 else 'ies'} changed on both sides, marked in the file:",
        err=True,
    )
    for conflict in result.conflicts:
        click.echo(f"  {conflict.describe()}", err=True)
    return 1


_SHOWN = 10  # addresses listed before "… and N more"


def _listed(lines: list[str]) -> None:
    for line in lines[:_SHOWN]:
        click.echo(f"  {line}")
    if len(lines) > _SHOWN:
        click.echo(f"  … and {len(lines) - _SHOWN} more")


@click.command(name="mv")
@click.argument("source", metavar="OLD")
@click.argument("dest", metavar="NEW")
@click.pass_obj
def mv(app: Any, source: str, dest: str) -> int:
    """Rename OLD to NEW in qrt.lock, so a renamed object is not created or run again.

    OLD and NEW are both program.NAME, both batch.NAME (every job of the batch) or both
    job.BATCH/JOB. The runtime is not called; a moved program gets its new name there at the
    next apply. A Moved manifest does the same through plan and apply, in every checkout.
    """
    moved = app.api().move(source, dest)
    click.echo(f"Moved {len(moved)} entr{'y' if len(moved) == 1 else 'ies'} in qrt.lock:")
    _listed([f"{old} -> {new}" for old, new in moved])
    if source.startswith("program."):
        click.echo("The next apply renames the program on the runtime (same id).")
    return 0


@click.command()
@click.argument("address")
@click.pass_obj
def forget(app: Any, address: str) -> int:
    """Drop ADDRESS from qrt.lock (batch.NAME: all its jobs); the runtime keeps the object.

    A program or job still in the manifests is created or run anew by the next apply (or adopted
    again with `qrt import`).
    """
    api = app.api()
    dropped = api.forget(address)
    click.echo(
        f"Forgot {len(dropped)} entr{'y' if len(dropped) == 1 else 'ies'}; "
        "nothing was changed on the runtime:"
    )
    _listed(dropped)
    try:
        desired = api.desired()
    except QrtError:
        return 0  # the manifests are someone else's business here; forgetting is done
    wanted = {f"program.{name}" for name in desired.programs} | {
        job.address for job in desired.jobs()
    }
    still = [a for a in dropped if a in wanted]
    if still:
        click.echo(
            f"{still[0]}{f' and {len(still) - 1} more' if len(still) > 1 else ''} still in the "
            "manifests: the next apply creates or runs "
            f"{'it' if len(still) == 1 else 'them'} again (`qrt import` adopts an existing one)."
        )
    return 0


COMMANDS = (merge_lockfile, mv, forget)
