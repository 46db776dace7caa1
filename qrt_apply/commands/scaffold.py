"""init, schema: start a program repository, and print the JSON Schemas editors use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]

_SCHEMA_ABOUT = {
    "program": "a Program manifest (kind: Program)",
    "jobbatch": "a JobBatch manifest (kind: JobBatch)",
    "moved": "a Moved manifest (kind: Moved: renamed addresses)",
    "project": "the project file qrt.yaml",
}


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def init(app: Any, directory: Path | None) -> int:
    """Start a program repository in DIRECTORY (default: the project directory): qrt.yaml,
    example manifests, a program, a circuit, the schemas, CI workflows, .gitignore and
    .gitattributes. Never overwrites a file."""
    from qrt_apply.scaffold import init_project

    target = directory if directory is not None else app.project_dir
    written = init_project(target)
    for path in written:
        click.echo(f"  created {path}")
    where = "" if target == Path(".") else f" -C {target}"
    click.echo(
        f"\nA qrt program repository with {len(written)} files. Next:\n"
        f"  qrt{where} validate                 # offline checks\n"
        f"  qrt{where} apply --auto-approve     # run the examples (embedded runtime)\n"
        "  git init && git add -A && git commit   # then push; the workflows plan and apply"
    )
    return 0


@click.command()
@click.argument("name", required=False, type=click.Choice(sorted(_SCHEMA_ABOUT)))
def schema(name: str | None) -> int:
    """Print the JSON Schema of NAME (program, jobbatch, moved or project); without NAME, list
    them."""
    from qrt_apply.schema import schema_text

    if name is None:
        for key in sorted(_SCHEMA_ABOUT):
            click.echo(f"{key:<9} {_SCHEMA_ABOUT[key]}")
        return 0
    click.echo(schema_text(name), nl=False)
    return 0


COMMANDS = (init, schema)
