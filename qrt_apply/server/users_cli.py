"""``qrt users create|token|list|revoke``: the operator's commands for the users of a ``qrt serve``
data directory. They work whether or not the server runs; tokens are printed once and stored
hashed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from qrt_apply.errors import ConfigError, NotFoundError
from qrt_apply.server.datadir import SERVER_DB_FILE, data_dir_option, open_store

__all__ = ["users"]

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@click.group("users")
def users() -> None:
    """Manage the users (and their API tokens) of a qrt serve data directory."""


def _check_name(name: str) -> None:
    if not _USER_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid user name {name!r}: use up to 64 letters, digits, '.', '_', '@' or '-'"
        )


def _print_token(name: str, token: str, data_dir: Path) -> None:
    click.echo(token)
    click.echo(
        f"API token of {name!r} for the server on {data_dir}. It is shown only this once; "
        "store it now (e.g. 'qrt account save --token ...').",
        err=True,
    )


@users.command("create")
@click.argument("name")
@data_dir_option
def users_create(name: str, data_dir: Path) -> None:
    """Create user NAME and print its new API token (once, on stdout)."""
    _check_name(name)
    store = open_store(data_dir, create=True)
    try:
        if any(user.name == name for user in store.list_users()):
            raise ConfigError(
                f"user {name!r} already exists; 'qrt users token {name}' issues another token"
            )
        _, token = store.create_user(name)
    finally:
        store.close()
    _print_token(name, token, data_dir)


@users.command("token")
@click.argument("name")
@data_dir_option
def users_token(name: str, data_dir: Path) -> None:
    """Issue an additional API token for the existing user NAME (printed once)."""
    store = open_store(data_dir)
    try:
        if not any(user.name == name for user in store.list_users()):
            raise NotFoundError(f"no user named {name!r}")
        _, token = store.create_user(name)
    finally:
        store.close()
    _print_token(name, token, data_dir)


@users.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_list(data_dir: Path, as_json: bool) -> None:
    """List users and how many valid API tokens each has (tokens are never shown); --json also
    gives each user's instance CRN for IBM Quantum Platform clients."""
    store = open_store(data_dir)
    try:
        records = store.list_users()
    finally:
        store.close()
    if as_json:
        from qrt_apply.server.iam import instance_crn

        rows = [
            {
                "name": u.name,
                "id": u.id,
                "created": u.created,
                "tokens": u.tokens,
                "instance": instance_crn(u.id),
            }
            for u in records
        ]
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not records:
        click.echo("no users")
        return
    width = max(len("NAME"), *(len(u.name) for u in records))
    click.echo(f"{'NAME':<{width}}  {'ID':<17}  {'CREATED':<27}  TOKENS")
    for u in records:
        click.echo(f"{u.name:<{width}}  {u.id:<17}  {u.created:<27}  {u.tokens}")


@users.command("revoke")
@click.argument("name")
@data_dir_option
def users_revoke(name: str, data_dir: Path) -> None:
    """Revoke every API token of user NAME and end its logged-in sessions."""
    from qrt_apply.server.serverdb import ServerDB

    store = open_store(data_dir)
    try:
        user_id = next((u.id for u in store.list_users() if u.name == name), None)
        if user_id is None:
            raise NotFoundError(f"no user named {name!r}")
        count = store.revoke_tokens(name)
    finally:
        store.close()
    db = ServerDB(data_dir / SERVER_DB_FILE)
    try:
        sessions = db.revoke_access_tokens(user_id)
    finally:
        db.close()
    click.echo(f"revoked {count} API token(s) and {sessions} access token(s) of {name!r}")
