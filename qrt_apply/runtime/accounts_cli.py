"""Commands about accounts and a look at the runtime: ``qrt account save|list|delete``,
``qrt backends``, ``qrt programs``, ``qrt jobs``.

The account commands work on ``~/.qiskit/qiskit-ibm.json`` (see ``accounts.py``) and never print a
token: ``list`` shows its last four characters at most. ``save`` takes the token from ``--token``,
else ``$QISKIT_IBM_TOKEN``, else a hidden prompt (``--token -`` reads one line from stdin), so it
need not appear on a command line. The runtime commands get their runtime from the click context:
``ctx.obj.open_runtime()`` (the main CLI provides it) and print a table, or JSON with ``--json``.
Errors are raised as ``QrtError``; the main CLI turns them into messages and exit codes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from qrt_apply.errors import ConfigError
from qrt_apply.runtime.accounts import (
    CHANNELS,
    Account,
    default_flag,
    delete_account,
    mask_token,
    save_account,
    saved_accounts,
)
from qrt_apply.runtime.base import Runtime

__all__ = ["account", "backends", "jobs", "programs"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=list))


# -- qrt account -----------------------------------------------------------------------------------


@click.group("account")
def account() -> None:
    """Manage saved Qiskit Runtime accounts (~/.qiskit/qiskit-ibm.json)."""


@account.command("save")
@click.option("--name", default=None, help="Account name [default: default-<channel>].")
@click.option(
    "--channel",
    type=click.Choice(CHANNELS),
    envvar="QISKIT_IBM_CHANNEL",
    default="ibm_cloud",
    show_default=True,
    help="ibm_quantum for `qrt serve` (also $QISKIT_IBM_CHANNEL).",
)
@click.option("--url", default=None, help="Authentication URL, e.g. http://127.0.0.1:8000/api.")
@click.option(
    "--token",
    default=None,
    envvar="QISKIT_IBM_TOKEN",
    show_envvar=True,
    help="API token; '-' reads it from stdin; prompted for when absent.",
)
@click.option(
    "--instance",
    default=None,
    help="hub/group/project (ibm_quantum) or CRN (ibm_cloud, ibm_quantum_platform).",
)
@click.option("--set-default", is_flag=True, help="Mark it as the default account.")
@click.option("--overwrite", is_flag=True, help="Replace an account of the same name.")
@click.option(
    "--verify/--no-verify", default=True, show_default=True, help="Verify TLS certificates."
)
def save(
    name: str | None,
    channel: str,
    url: str | None,
    token: str | None,
    instance: str | None,
    set_default: bool,
    overwrite: bool,
    verify: bool,
) -> None:
    """Save an account for a Qiskit Runtime (for example `qrt serve`)."""
    if token == "-":
        token = sys.stdin.readline().strip()
    elif not token:
        token = click.prompt("API token", hide_input=True, err=True).strip()
    if not token:
        raise ConfigError("no API token given")
    new = Account(channel, token, url=url, instance=instance, verify=verify)
    saved_as = save_account(new, name=name, set_as_default=set_default, overwrite=overwrite)
    where = f" instance {new.instance}" if new.instance else ""
    suffix = " (default)" if set_default else ""
    click.echo(f"Saved account {saved_as!r}{suffix}: {channel} {new.resolved_url}{where}")


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_accounts(as_json: bool) -> None:
    """List saved accounts (tokens masked)."""
    found = saved_accounts()
    rows = [
        {
            "name": name,
            "channel": acct.channel,
            "url": acct.resolved_url,
            "instance": acct.instance,
            "default": default_flag(name),
            "token": mask_token(acct.token),
        }
        for name, acct in found.items()
    ]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No saved accounts. Save one with `qrt account save`.")
        return
    headers = ("NAME", "CHANNEL", "URL", "INSTANCE", "DEFAULT", "TOKEN")
    keys = ("name", "channel", "url", "instance", "default", "token")
    table = [
        [("yes" if r[k] is True else "" if r[k] is False else r[k]) for k in keys] for r in rows
    ]
    click.echo(_table(headers, table))


@account.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete the saved account NAME."""
    if not delete_account(name):
        raise ConfigError(f"no saved account named {name!r}")
    click.echo(f"Deleted account {name!r}")


# -- a look at the runtime -------------------------------------------------------------------------


def _runtime(ctx: click.Context) -> Runtime:
    opener = getattr(ctx.obj, "open_runtime", None)
    if not callable(opener):
        raise ConfigError("internal: no runtime available to this command")
    runtime: Runtime = opener()
    return runtime


def _as_dict(item: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(item).items() if k != "data"}


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def backends(ctx: click.Context, as_json: bool) -> None:
    """List the runtime's backends."""
    found = _runtime(ctx).backends()
    if as_json:
        _echo_json([_as_dict(b) for b in found])
        return
    rows = [
        (
            b.name,
            b.num_qubits,
            "yes" if b.simulator else "no",
            "yes" if b.noisy else "no",
            "yes" if b.operational else "no",
        )
        for b in found
    ]
    click.echo(_table(("NAME", "QUBITS", "SIMULATOR", "NOISY", "OPERATIONAL"), rows))


@click.command("programs")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def programs(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """List the programs the runtime shows you (yours and public ones)."""
    found = _runtime(ctx).programs(limit=limit)
    if as_json:
        _echo_json([_as_dict(p) for p in found])
        return
    if not found:
        click.echo("No programs.")
        return
    rows = [
        (p.id, p.name, "public" if p.is_public else "private", p.max_execution_time, p.update_date)
        for p in found
    ]
    click.echo(_table(("ID", "NAME", "VISIBILITY", "MAX_TIME", "UPDATED"), rows))


@click.command("jobs")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--program", "program_id", default=None, help="Only jobs of this program id.")
@click.option("--backend", default=None, help="Only jobs on this backend.")
@click.option("--tag", "tags", multiple=True, help="Only jobs with this tag (repeatable: all).")
@click.option("--pending/--final", default=None, help="Only queued/running, or only final jobs.")
@click.option("--session", "session_id", default=None, help="Only jobs of this session.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def jobs(
    ctx: click.Context,
    limit: int,
    program_id: str | None,
    backend: str | None,
    tags: tuple[str, ...],
    pending: bool | None,
    session_id: str | None,
    as_json: bool,
) -> None:
    """List your most recent jobs on the runtime."""
    found = _runtime(ctx).jobs(
        limit=limit,
        program_id=program_id,
        backend=backend,
        tags=tags,
        pending=pending,
        session_id=session_id,
    )
    if as_json:
        _echo_json([_as_dict(j) for j in found])
        return
    if not found:
        click.echo("No jobs.")
        return
    rows = [
        (
            j.id,
            j.program_id,
            j.status + (f" ({j.reason})" if j.reason else ""),
            j.backend,
            j.created,
            ",".join(j.tags),
        )
        for j in found
    ]
    click.echo(_table(("ID", "PROGRAM", "STATUS", "BACKEND", "CREATED", "TAGS"), rows))
