"""merge-lockfile, mv, forget: commands that edit qrt.lock itself and never call the runtime."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from qrt_apply.errors import LockfileError

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


COMMANDS = (merge_lockfile,)
