"""``qrt serve``, and the standalone ``python -m qrt_apply.server.cli`` (``serve`` and ``users``).

The main ``qrt`` group registers :data:`serve` (and ``users`` from ``users_cli.py``). Both work on a
**data directory** (``datadir.py``) (default
``.qrt-server``, or ``$QRT_SERVE_DATA_DIR``) that holds the runtime store (``runtime.db``:
users, hashed API tokens, programs, jobs) and the server DB (``server.db``: hashed access
tokens, idempotency records). There is no default user and no default password: the operator
creates the first user with ``qrt users create NAME --data-dir D``, which prints its API token
once. Errors are ``QrtError``s; the calling CLI turns them into messages and exit codes. Heavy
modules are imported inside the commands.

Stopping: SIGINT and SIGTERM both stop ``qrt serve`` gracefully and it exits 0. uvicorn closes the
HTTP side, then running jobs get ``--shutdown-grace`` seconds to finish; the rest are handed over
(killed, back to QUEUED with no runner) and the next start runs them. A second signal during the
grace hands over at once.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from qrt_apply.engine.sandbox import Limits
from qrt_apply.errors import ConfigError, QrtError
from qrt_apply.server.datadir import (
    DEFAULT_DATA_DIR,
    SERVER_DB_FILE,
    STORE_FILE,
    data_dir_option,
    open_store,
)
from qrt_apply.server.users_cli import users

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_SHUTDOWN_GRACE",
    "SERVER_DB_FILE",
    "STORE_FILE",
    "main",
    "serve",
    "server_cli",
    "users",
]

DEFAULT_SHUTDOWN_GRACE = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


class _StopRequested(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signum)


def _on_stop_signals(handler: Any) -> dict[int, Any]:
    """Install ``handler`` for SIGINT and SIGTERM; returns the previous handlers. Only the main
    thread may (and only it receives signals): elsewhere, as for uvicorn, nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}


def _hurry_on_signal() -> threading.Event:
    """From now on a stop signal only sets the returned event (it no longer raises), so that no
    exception can land in the middle of the hand-over; a second signal thus cuts the grace short."""
    hurry = threading.Event()
    _on_stop_signals(lambda signum, frame: hurry.set())
    return hurry


def _close_service(service: Any, executor: Any, grace: float, hurry: threading.Event) -> None:
    """Let the jobs this server holds finish for up to ``grace`` seconds (or until ``hurry``),
    then hand the rest over: killed and re-queued with no runner, for the next start.

    Polls instead of one long ``service.close(wait=True, timeout=grace)`` so that ``hurry`` is
    noticed within a fraction of a second.
    """
    deadline = time.monotonic() + grace
    while not hurry.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or executor.wait_idle(min(left, 0.2)):
            break
    service.close(wait=False)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    type=click.IntRange(0, 65535),
    show_default=True,
    help="0: any free port.",
)
@data_dir_option
@click.option(
    "--workers",
    default=2,
    type=click.IntRange(1, 64),
    show_default=True,
    help="Jobs executed at the same time: warm built-in workers, and pre-warmed sandboxes.",
)
@click.option(
    "--unsafe-no-sandbox",
    is_flag=True,
    help="Run uploaded programs as plain child processes with this server's authority "
    "(only for a single trusted user, where no sandbox can be made).",
)
@click.option(
    "--sandbox-memory-mb",
    default=Limits.memory_mb,
    type=click.IntRange(512, None),
    show_default=True,
    help="Address space of one uploaded program's sandbox, in MiB.",
)
@click.option(
    "--sandbox-processes",
    default=Limits.processes,
    type=click.IntRange(4, None),
    show_default=True,
    help="Processes and threads one sandbox may have.",
)
@click.option(
    "--sandbox-open-files",
    default=Limits.open_files,
    type=click.IntRange(32, None),
    show_default=True,
    help="Open files per process in a sandbox.",
)
@click.option(
    "--sandbox-file-size-mb",
    default=Limits.file_size_mb,
    type=click.IntRange(1, None),
    show_default=True,
    help="Largest file a sandbox may write (its output log included), in MiB.",
)
@click.option(
    "--sandbox-tmp-mb",
    default=Limits.tmp_mb,
    type=click.IntRange(1, None),
    show_default=True,
    help="Size of a sandbox's in-memory /tmp, in MiB.",
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
@click.option(
    "--shutdown-grace",
    default=DEFAULT_SHUTDOWN_GRACE,
    type=click.FloatRange(0, None),
    show_default=True,
    help="Seconds running jobs get to finish on SIGINT/SIGTERM before they are handed over.",
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
    shutdown_grace: float,
    unsafe_no_sandbox: bool,
    sandbox_memory_mb: int,
    sandbox_processes: int,
    sandbox_open_files: int,
    sandbox_file_size_mb: int,
    sandbox_tmp_mb: int,
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
    store = open_store(data_dir, create=True)
    db = ServerDB(data_dir / SERVER_DB_FILE)
    limits = Limits(
        memory_mb=sandbox_memory_mb,
        processes=sandbox_processes,
        open_files=sandbox_open_files,
        file_size_mb=sandbox_file_size_mb,
        tmp_mb=sandbox_tmp_mb,
    )
    executor = LocalExecutor(
        store,
        workers=workers,
        programs="unsafe" if unsafe_no_sandbox else "sandbox",
        limits=limits,
        prewarm=True,
    )
    service = RuntimeService(store, executor)
    # uvicorn captures SIGINT/SIGTERM while it runs and re-raises them with signal.raise_signal
    # once it has shut down. With the default SIGTERM action that re-raise would kill the process
    # before the jobs are handed over, so both signals raise _StopRequested here instead: before
    # uvicorn runs (a stop during start-up) and after it (its re-raise).
    previous = _on_stop_signals(_raise_stop)
    try:
        try:
            executor.start()  # warm workers and sandboxes before the first request
            click.echo(_execution_line(executor, limits, unsafe_no_sandbox), err=True)
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
        except _StopRequested:
            pass  # a stop is a normal end: exit 0 once the jobs are dealt with
        finally:
            hurry = _hurry_on_signal()
            click.echo(
                f"qrt serve: stopping; running jobs get up to {shutdown_grace:g} s to finish",
                err=True,
            )
            _close_service(service, executor, shutdown_grace, hurry)
            handed = sum(job.runner is None for job in store.unfinished_jobs())
            click.echo(
                f"qrt serve: stopped; {handed} unfinished job(s) queued for the next start",
                err=True,
            )
            db.close()
            store.close()
            sock.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _execution_line(executor: Any, limits: Limits, unsafe: bool) -> str:
    """The start-up line that says how jobs run here, uploaded programs above all."""
    builtins = f"built-ins on {executor.workers} warm worker(s)"
    if unsafe:
        return (
            f"qrt serve: WARNING: --unsafe-no-sandbox: uploaded programs run as plain child "
            f"processes with this server's authority; {builtins}"
        )
    refusal = executor.program_refusal()
    if refusal is not None:
        return f"qrt serve: uploaded programs are refused: {refusal}"
    return (
        f"qrt serve: uploaded programs run in sandboxes (namespaces, no network, "
        f"{limits.memory_mb} MiB, {limits.processes} processes); {builtins}"
    )


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
