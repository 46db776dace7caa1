"""Click commands of the runtime server: ``qrt serve`` and ``qrt users create|token|list|revoke``.

The lead registers :data:`serve` and :data:`users` in the main ``qrt`` group; ``python -m
qrt_apply.server.cli`` runs them standalone. Both work on a **data directory** (default
``.qrt-server``, or ``$QRT_SERVE_DATA_DIR``) that holds the runtime store (``runtime.db``:
users, hashed API tokens, programs, jobs) and the server DB (``server.db``: hashed access
tokens, idempotency records). There is no default user and no default password: the operator
creates the first user with ``qrt users create NAME --data-dir D``, which prints its API token
once. Errors are ``QrtError``s; the calling CLI turns them into messages and exit codes. Heavy
modules are imported inside the commands.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import click

from qrt_apply.errors import ConfigError, NotFoundError, QrtError

__all__ = [
    "DEFAULT_DATA_DIR",
    "SERVER_DB_FILE",
    "STORE_FILE",
    "main",
    "serve",
    "server_cli",
    "users",
]

DEFAULT_DATA_DIR = ".qrt-server"
STORE_FILE = "runtime.db"  # the same name as the embedded runtime's
SERVER_DB_FILE = "server.db"
_SHUTDOWN_GRACE = 5.0
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    envvar="QRT_SERVE_DATA_DIR",
    show_default=True,
    help="Server state directory (also $QRT_SERVE_DATA_DIR).",
)


def _prepare_data_dir(data_dir: Path, *, create: bool) -> None:
    if data_dir.is_dir():
        return
    if not create:
        raise ConfigError(
            f"no server data directory at {data_dir}; create a user first with "
            f"'qrt users create NAME --data-dir {data_dir}'"
        )
    data_dir.mkdir(parents=True, mode=0o700)


def _open_store(data_dir: Path, *, create: bool = False) -> Any:
    from qrt_apply.engine.store import Store

    _prepare_data_dir(data_dir, create=create)
    return Store(data_dir / STORE_FILE)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), so the real port is known up front."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve --host {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    type=click.IntRange(0, 65535),
    show_default=True,
    help="0: any free port.",
)
@_data_dir_option
@click.option(
    "--workers",
    default=2,
    type=click.IntRange(1, 64),
    show_default=True,
    help="Jobs executed at the same time (each in its own child process).",
)
@click.option(
    "--max-body-mb",
    default=10,
    type=click.IntRange(1, 1024),
    show_default=True,
    help="Largest accepted request body, in MiB (larger ones get 413).",
)
@click.option(
    "--token-ttl",
    default=14 * 24 * 3600,
    type=click.IntRange(60, None),
    show_default=True,
    help="Lifetime of the access tokens handed out at login, in seconds.",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    workers: int,
    max_body_mb: int,
    token_ttl: int,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    log_level: str,
) -> None:
    """Serve the Qiskit Runtime program REST API (auth base /api, runtime base /runtime)."""
    import uvicorn

    from qrt_apply.engine.executor import LocalExecutor
    from qrt_apply.engine.service import RuntimeService
    from qrt_apply.server.app import create_app
    from qrt_apply.server.serverdb import ServerDB

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    sock = _bind(host, port)
    store = _open_store(data_dir, create=True)
    db = ServerDB(data_dir / SERVER_DB_FILE)
    service = RuntimeService(store, LocalExecutor(store, workers=workers))
    try:
        service.recover()
        app = create_app(
            service,
            store,
            db,
            max_body_bytes=max_body_mb * 1024 * 1024,
            access_ttl=token_ttl,
            close_on_shutdown=False,
        )
        bound = sock.getsockname()
        shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        base = f"{'https' if ssl_certfile else 'http'}://{shown_host}:{bound[1]}"
        click.echo(f"qrt serve: listening on {base} (auth URL {base}/api)", err=True)
        click.echo(f"qrt serve: data directory {data_dir.resolve()}", err=True)
        if not store.list_users():
            click.echo(
                f"qrt serve: no users yet; create one with "
                f"'qrt users create NAME --data-dir {data_dir}'",
                err=True,
            )
        config = uvicorn.Config(
            app,
            log_level=log_level,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            timeout_graceful_shutdown=10,
            server_header=False,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        # running jobs get a few seconds; the rest is handed over and re-queued at the next start
        service.close(wait=True, timeout=_SHUTDOWN_GRACE)
        db.close()
        sock.close()


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
@_data_dir_option
def users_create(name: str, data_dir: Path) -> None:
    """Create user NAME and print its new API token (once, on stdout)."""
    _check_name(name)
    store = _open_store(data_dir, create=True)
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
@_data_dir_option
def users_token(name: str, data_dir: Path) -> None:
    """Issue an additional API token for the existing user NAME (printed once)."""
    store = _open_store(data_dir)
    try:
        if not any(user.name == name for user in store.list_users()):
            raise NotFoundError(f"no user named {name!r}")
        _, token = store.create_user(name)
    finally:
        store.close()
    _print_token(name, token, data_dir)


@users.command("list")
@_data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def users_list(data_dir: Path, as_json: bool) -> None:
    """List users and how many valid API tokens each has (tokens are never shown)."""
    store = _open_store(data_dir)
    try:
        records = store.list_users()
    finally:
        store.close()
    if as_json:
        rows = [
            {"name": u.name, "id": u.id, "created": u.created, "tokens": u.tokens} for u in records
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
@_data_dir_option
def users_revoke(name: str, data_dir: Path) -> None:
    """Revoke every API token of user NAME and end its logged-in sessions."""
    from qrt_apply.server.serverdb import ServerDB

    store = _open_store(data_dir)
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


server_cli = click.Group(
    "qrt-server", commands={"serve": serve, "users": users}, help="The qrt runtime server."
)


def main(argv: list[str] | None = None) -> None:
    """Standalone entry point: ``python -m qrt_apply.server.cli``."""
    try:
        server_cli.main(args=argv, prog_name="qrt", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except QrtError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
